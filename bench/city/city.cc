// The city model. Devices are indexes into per-kind tables; an incident is an "until" instant per
// entity (device, zone, junction or district), started by a Poisson process whose rate is
// proportional to the number of entities, so a bigger city has proportionally more incidents.
#include "bench/city/city.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string_view>

#include "rules/expr.h"
#include "rules/timezone.h"

namespace vigie::bench {
namespace {

using rules::Event;
using rules::Value;

const std::vector<std::string> kDistricts = {
    "centre",        "gare",         "montchapet",   "toison-d-or",  "gresilles",
    "fontaine-d-ouche", "universite", "port-du-canal", "bourroches",  "mirande",
    "maladiere",     "clemenceau",   "chevre-morte", "valendons",    "mansart",
    "drapeau",       "pouilly",      "victor-hugo",  "faubourg-raines", "montmuzard"};

// The busiest junctions first: junction selection is skewed towards low indexes.
const std::vector<std::string> kNamedJunctions = {
    "darcy",   "republique", "wilson",       "trente-octobre", "zenith",  "toison-d-or",
    "clemenceau", "grangier", "saint-bernard", "monge",        "mirande", "premier-mai",
    "auxonne", "sully",      "jean-jaures",  "gabriel-peri",   "rocade-est", "rocade-nord"};

enum Kind : int {
  kTraffic, kPedestrian, kLamp, kLux, kCamHeartbeat, kCamStatus, kPressure, kFlow, kBin,
  kReport, kVehicle, kKinds
};
const char* const kKindNames[kKinds] = {
    "traffic", "pedestrian", "lamp.status", "lux", "camera.heartbeat", "camera.status",
    "water.pressure", "water.flow", "bin.level", "report", "vehicle.position"};
// Share of the event stream, in percent.
const int kEventShare[kKinds] = {28, 8, 14, 4, 16, 2, 7, 4, 8, 1, 8};

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;

// An incident family: one "until" per entity; new incidents arrive at per_entity_per_s * n per s.
struct Incidents {
  std::vector<int64_t> until;
  double per_entity_per_s = 0;
  int64_t min_ms = 0, max_ms = 0;
  bool Active(size_t i, int64_t now) const { return i < until.size() && now < until[i]; }
};

struct Vehicle {
  std::string name;
  const char* fleet;
  int district;
};

}  // namespace

struct City::Impl {
  CityOptions opts;
  std::mt19937_64 rng;
  rules::Location dijon;

  int n_zones = 0;
  std::vector<std::string> zones;        // "centre-1" ...
  std::vector<int> zone_district;
  std::vector<std::string> junctions;
  std::vector<int> junction_zone;
  std::vector<std::string> crossings;
  std::vector<int> crossing_junction;

  // Devices per kind (names pre-built: no formatting per event).
  std::vector<std::string> loops, peds, lamps, luxes, cams, wps, wfs, bins, apps;
  std::vector<int> loop_junction;        // loop i -> junction
  std::vector<std::vector<int>> junction_loops;
  std::vector<int> lamp_zone, lux_zone, cam_zone, wp_district, wf_district, bin_district;
  std::vector<uint8_t> loop_bus_lane;
  std::vector<std::vector<int>> zone_cams;
  std::vector<Vehicle> vehicles;
  std::vector<double> bin_fill;          // current fill, %
  std::vector<double> bin_rate;          // % per hour
  std::vector<int64_t> bin_full_since;   // when it went over 85 (0 = not full)
  std::vector<int64_t> bin_updated;

  int kind_table[100];                   // percent -> kind

  Incidents lamp_fault, lamp_dark, lamp_stuck, cam_silent, cam_fault, zone_cam_outage,
      zone_idle, junction_jam, loop_speeding, loop_outage, district_pressure, wp_burst,
      district_leak, wf_noisy, bus_stall, truck_silent;
  std::vector<Incidents*> all_incidents;
  uint64_t started = 0;
  int64_t last_tick = 0;
  int hot_district = 0;
  int64_t hot_until = 0;
  double sun = 0;                        // sun altitude, refreshed once per tick
  int local_hour = 0;

  explicit Impl(const CityOptions& o) : opts(o), rng(o.seed) { Build(); }

  double U() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }
  int Pick(size_t n) { return n == 0 ? 0 : static_cast<int>(std::min<size_t>(n - 1, U() * n)); }
  // Skewed pick: P(index < x*n) = x^(1/skew); skew 1 = uniform.
  int Skewed(size_t n, double skew) {
    if (n == 0) return 0;
    return static_cast<int>(std::min<double>(n - 1, std::floor(std::pow(U(), skew) * n)));
  }
  double Range(double lo, double hi) { return lo + (hi - lo) * U(); }

  static int Count(int total, double share, int min) {
    return std::max(min, static_cast<int>(total * share));
  }

  void Build() {
    const int n = std::max(opts.devices, 100);
    const int nd = static_cast<int>(kDistricts.size());
    n_zones = std::clamp(n / 60, 8, 400);
    for (int z = 0; z < n_zones; ++z) {
      const int d = z % nd;
      zones.push_back(kDistricts[d] + "-" + std::to_string(z / nd + 1));
      zone_district.push_back(d);
    }
    const int nj = std::clamp(n / 80, static_cast<int>(kNamedJunctions.size()), 2000);
    for (int j = 0; j < nj; ++j) {
      junctions.push_back(j < static_cast<int>(kNamedJunctions.size()) ? kNamedJunctions[j]
                                                                     : "j-" + std::to_string(j));
      junction_zone.push_back(j % n_zones);
    }
    junction_loops.resize(nj);
    zone_cams.resize(n_zones);

    auto names = [](std::vector<std::string>* v, const char* prefix, int count) {
      v->reserve(count);
      for (int i = 1; i <= count; ++i) v->push_back(std::string(prefix) + std::to_string(i));
    };
    names(&loops, "loop-", Count(n, 0.20, 20));
    names(&peds, "ped-", Count(n, 0.04, 4));
    names(&lamps, "lamp-", Count(n, 0.36, 20));
    names(&luxes, "lux-", Count(n, 0.03, n_zones));
    names(&cams, "cam-", Count(n, 0.10, 10));
    names(&wps, "wp-", Count(n, 0.04, nd));
    names(&wfs, "wf-", Count(n, 0.02, nd));
    names(&bins, "bin-", Count(n, 0.15, 10));
    names(&apps, "app-", Count(n, 0.04, 10));
    const int nv = Count(n, 0.02, 10);
    int per_fleet[3] = {0, 0, 0};
    for (int i = 0; i < nv; ++i) {
      Vehicle v;
      const int r = i % 5;  // 3 buses, 1 police car, 1 waste truck out of 5
      const int f = r < 3 ? 0 : (r == 3 ? 1 : 2);
      static const char* const kFleets[3] = {"bus", "police", "waste"};
      v.fleet = kFleets[f];
      v.name = std::string(v.fleet) + "-" + std::to_string(++per_fleet[f]);
      v.district = Pick(nd);
      vehicles.push_back(std::move(v));
    }
    for (size_t i = 0; i < loops.size(); ++i) {
      const int j = static_cast<int>(i % junctions.size());
      loop_junction.push_back(j);
      junction_loops[j].push_back(static_cast<int>(i));
      loop_bus_lane.push_back(i % 7 == 3);
    }
    for (size_t i = 0; i < peds.size(); ++i) {
      crossings.push_back(junctions[i % junctions.size()] + "-x" + std::to_string(i / junctions.size() + 1));
      crossing_junction.push_back(static_cast<int>(i % junctions.size()));
    }
    for (size_t i = 0; i < lamps.size(); ++i) lamp_zone.push_back(static_cast<int>(i % n_zones));
    for (size_t i = 0; i < luxes.size(); ++i) lux_zone.push_back(static_cast<int>(i % n_zones));
    for (size_t i = 0; i < cams.size(); ++i) {
      cam_zone.push_back(static_cast<int>(i % n_zones));
      zone_cams[i % n_zones].push_back(static_cast<int>(i));
    }
    for (size_t i = 0; i < wps.size(); ++i) wp_district.push_back(static_cast<int>(i % nd));
    for (size_t i = 0; i < wfs.size(); ++i) wf_district.push_back(static_cast<int>(i % nd));
    for (size_t i = 0; i < bins.size(); ++i) {
      bin_district.push_back(static_cast<int>(i % nd));
      bin_fill.push_back(Range(0, 95));
      bin_rate.push_back(Range(40, 120));
      bin_full_since.push_back(0);
      bin_updated.push_back(0);
    }

    int k = 0;
    for (int kind = 0; kind < kKinds; ++kind)
      for (int s = 0; s < kEventShare[kind] && k < 100; ++s) kind_table[k++] = kind;
    while (k < 100) kind_table[k++] = kTraffic;

    auto family = [&](Incidents* f, size_t entities, double every_s, int64_t min_ms,
                      int64_t max_ms) {
      f->until.assign(entities, 0);
      f->per_entity_per_s = 1.0 / every_s;
      f->min_ms = min_ms;
      f->max_ms = max_ms;
      all_incidents.push_back(f);
    };
    // "every_s": mean time between two incidents of one entity.
    family(&lamp_fault, lamps.size(), 4 * 3600, 1 * kMin, 10 * kMin);
    family(&lamp_dark, lamps.size(), 8 * 3600, 5 * kMin, 20 * kMin);
    family(&lamp_stuck, lamps.size(), 8 * 3600, 20 * kMin, 40 * kMin);
    family(&cam_silent, cams.size(), 2 * 3600, 150 * kSec, 6 * kMin);
    family(&cam_fault, cams.size(), 3 * 3600, 1 * kMin, 5 * kMin);
    family(&zone_cam_outage, zones.size(), 4 * 3600, 6 * kMin, 8 * kMin);
    family(&zone_idle, zones.size(), 2 * 3600, 11 * kMin, 20 * kMin);
    family(&junction_jam, junctions.size(), 3600, 4 * kMin, 10 * kMin);
    family(&loop_speeding, loops.size(), 6 * 3600, 3 * kMin, 8 * kMin);
    family(&loop_outage, loops.size(), 48 * 3600, 31 * kMin, 40 * kMin);
    family(&district_pressure, kDistricts.size(), 3600, 2 * kMin, 5 * kMin);
    family(&wp_burst, wps.size(), 12 * 3600, 1 * kMin, 2 * kMin);
    family(&district_leak, kDistricts.size(), 3 * 3600, 30 * kMin, 60 * kMin);
    family(&wf_noisy, wfs.size(), 4 * 3600, 5 * kMin, 10 * kMin);
    family(&bus_stall, vehicles.size(), 3600, 6 * kMin, 10 * kMin);
    family(&truck_silent, vehicles.size(), 4 * 3600, 11 * kMin, 15 * kMin);
  }

  // Starts the incidents due since the last tick (once a second of event time at most).
  void Tick(int64_t now) {
    if (last_tick == 0) {
      last_tick = now;
      Refresh(now);
      return;
    }
    if (now - last_tick < kSec) return;
    const double dt_s = static_cast<double>(now - last_tick) / 1000.0;
    last_tick = now;
    Refresh(now);
    if (!opts.incidents) return;
    for (Incidents* f : all_incidents) {
      if (f->until.empty()) continue;
      const double mean = f->per_entity_per_s * static_cast<double>(f->until.size()) * dt_s;
      const int count = std::poisson_distribution<int>(mean)(rng);
      for (int c = 0; c < count; ++c) {
        const size_t i = Pick(f->until.size());
        if (f->until[i] > now) continue;  // already in an incident
        f->until[i] = now + static_cast<int64_t>(Range(f->min_ms, f->max_ms));
        ++started;
      }
    }
    // A storm: three or four cameras of one zone fault together, about once per zone per 6 h.
    const double storm_mean = static_cast<double>(zones.size()) / (6 * 3600.0) * dt_s;
    for (int c = std::poisson_distribution<int>(storm_mean)(rng); c > 0; --c) {
      const auto& zc = zone_cams[Pick(zones.size())];
      for (size_t k = 0; k < zc.size() && k < 4; ++k)
        cam_fault.until[zc[k]] = now + static_cast<int64_t>(Range(5 * kMin, 8 * kMin));
      ++started;
    }
    if (now >= hot_until) {  // reports cluster in one district for 10 minutes
      hot_district = Pick(kDistricts.size());
      hot_until = now + 10 * kMin;
    }
  }

  void Refresh(int64_t now) {
    sun = rules::SunAltitude(now, dijon);
    // Dijon is UTC+1 in winter, UTC+2 in summer; the hour drives diurnal patterns only.
    local_hour = static_cast<int>(((now / 3600000) + 1) % 24);
  }

  static void Add(Event* ev, const char* name, const Value& v) {
    ev->fields.emplace_back();
    ev->fields.back().name = name;
    ev->fields.back().value.Assign(v);
  }
  static void Str(Event* ev, const char* name, std::string_view s) { Add(ev, name, Value::String(s)); }
  static void Num(Event* ev, const char* name, double v) { Add(ev, name, Value::Number(v)); }
  static double Round1(double v) { return std::round(v * 10) / 10; }

  void Next(int64_t now, Event* ev) {
    Tick(now);
    ev->Clear();
    ev->ts_ms = now;
    ev->has_ts = opts.with_ts;
    for (int attempt = 0; attempt < 8; ++attempt) {
      const int kind = kind_table[Pick(100)];
      if (Make(kind, now, ev)) return;
      ev->fields.clear();
    }
    Make(kLux, now, ev);  // lux sensors are never silent
  }

  // Returns false if the chosen device is silent right now (the caller picks another).
  bool Make(int kind, int64_t now, Event* ev) {
    ev->kind = kKindNames[kind];
    switch (kind) {
      case kTraffic: {
        const int j = Skewed(junctions.size(), 2.5);
        const auto& jl = junction_loops[j];
        if (jl.empty()) return false;
        const int l = jl[Pick(jl.size())];
        if (loop_outage.Active(l, now)) return false;
        const int z = junction_zone[j];
        Str(ev, "device", loops[l]);
        Str(ev, "zone", zones[z]);
        Str(ev, "junction", junctions[j]);
        Str(ev, "lane", loop_bus_lane[l] ? "bus" : "car");
        const double busy = j < 6 ? 3.0 : (j < 18 ? 1.8 : 1.0);
        double vehicles, speed;
        if (zone_idle.Active(z, now)) {
          vehicles = 0;
          speed = 0;
        } else if (junction_jam.Active(j, now)) {
          vehicles = std::round(Range(15, 40));
          speed = std::round(Range(3, 12));
        } else if (loop_speeding.Active(l, now)) {
          vehicles = std::round(Range(1, 4));
          speed = std::round(Range(72, 98));
        } else {
          const double night = (local_hour < 6 || local_hour >= 22) ? 0.3 : 1.0;
          vehicles = std::round(Range(0, 10 * busy * night));
          speed = std::round(Range(22, 55));
        }
        Num(ev, "vehicles", vehicles);
        if (vehicles > 0) Num(ev, "speed", speed);
        return true;
      }
      case kPedestrian: {
        const int p = Skewed(peds.size(), 1.8);
        Str(ev, "device", peds[p]);
        Str(ev, "crossing", crossings[p]);
        return true;
      }
      case kLamp: {
        const int l = Pick(lamps.size());
        Str(ev, "device", lamps[l]);
        Str(ev, "zone", zones[lamp_zone[l]]);
        const bool night = sun < -2;
        if (lamp_fault.Active(l, now)) {
          Str(ev, "status", "fault");
          Num(ev, "power_w", 0);
        } else {
          Str(ev, "status", "ok");
          double w;
          if (night) w = lamp_dark.Active(l, now) ? 0 : std::round(Range(60, 120));
          else w = lamp_stuck.Active(l, now) ? std::round(Range(80, 110)) : std::round(Range(0, 2));
          Num(ev, "power_w", w);
        }
        return true;
      }
      case kLux: {
        const int x = Pick(luxes.size());
        Str(ev, "device", luxes[x]);
        Str(ev, "zone", zones[lux_zone[x]]);
        double lux;
        if (sun < -6) lux = Range(0.5, 6);
        else if (sun < 3) lux = Range(5, 80);
        else lux = Range(500, 20000) * std::sin(sun * 3.14159265 / 180) + 200;
        Num(ev, "lux", Round1(lux));
        return true;
      }
      case kCamHeartbeat:
      case kCamStatus: {
        const int c = Pick(cams.size());
        const int z = cam_zone[c];
        if (cam_silent.Active(c, now) || zone_cam_outage.Active(z, now)) return false;
        Str(ev, "device", cams[c]);
        Str(ev, "zone", zones[z]);
        if (kind == kCamStatus) {
          const bool fault = cam_fault.Active(c, now);
          Str(ev, "status", fault ? "fault" : "ok");
          static const int kCodes[] = {3, 7, 12, 21};
          Num(ev, "code", fault ? kCodes[c % 4] : 0);
        }
        return true;
      }
      case kPressure: {
        const int w = Pick(wps.size());
        const int d = wp_district[w];
        Str(ev, "device", wps[w]);
        Str(ev, "district", kDistricts[d]);
        double bar;
        if (wp_burst.Active(w, now)) bar = Range(0.1, 0.4);
        else if (district_pressure.Active(d, now)) bar = Range(0.9, 1.4);
        else bar = Range(3.0, 4.5);
        Num(ev, "bar", Round1(bar));
        return true;
      }
      case kFlow: {
        const int w = Pick(wfs.size());
        const int d = wf_district[w];
        Str(ev, "device", wfs[w]);
        Str(ev, "district", kDistricts[d]);
        double m3h = (local_hour >= 1 && local_hour < 5) ? Range(10, 30) : Range(40, 90);
        if (district_leak.Active(d, now)) m3h += 150;
        if (wf_noisy.Active(w, now)) m3h = Range(0, 220);
        Num(ev, "m3h", std::round(m3h));
        return true;
      }
      case kBin: {
        const int b = Pick(bins.size());
        if (bin_updated[b] != 0) {
          bin_fill[b] += bin_rate[b] * static_cast<double>(now - bin_updated[b]) / 3600000.0;
        }
        bin_updated[b] = now;
        if (bin_fill[b] > 85 && bin_full_since[b] == 0) bin_full_since[b] = now;
        // The truck comes 12 to 40 minutes after the bin went over 85 %.
        if (bin_full_since[b] != 0 && now - bin_full_since[b] > static_cast<int64_t>(Range(12, 40) * kMin)) {
          bin_fill[b] = Range(0, 8);
          bin_full_since[b] = 0;
        }
        bin_fill[b] = std::min(bin_fill[b], 100.0);
        Str(ev, "device", bins[b]);
        Str(ev, "district", kDistricts[bin_district[b]]);
        Num(ev, "fill", std::round(bin_fill[b]));
        return true;
      }
      case kReport: {
        Str(ev, "device", apps[Pick(apps.size())]);
        const int d = U() < 0.5 ? hot_district : Pick(kDistricts.size());
        Str(ev, "district", kDistricts[d]);
        const double c = U();
        Str(ev, "category", c < 0.35 ? "pothole" : c < 0.65 ? "graffiti" : c < 0.8 ? "lighting" : "waste");
        const double s = U();
        Num(ev, "severity", s < 0.6 ? 1 : s < 0.9 ? 2 : 3);
        return true;
      }
      case kVehicle: {
        const int v = Pick(vehicles.size());
        Vehicle& veh = vehicles[v];
        if (truck_silent.Active(v, now) && veh.fleet[0] == 'w') return false;
        if (U() < 0.002) veh.district = Pick(kDistricts.size());  // drives on
        Str(ev, "device", veh.name);
        Str(ev, "fleet", veh.fleet);
        Str(ev, "district", kDistricts[veh.district]);
        const bool stalled = veh.fleet[0] == 'b' && bus_stall.Active(v, now);
        Num(ev, "speed", stalled ? std::round(Range(0, 2)) : std::round(Range(5, 50)));
        return true;
      }
    }
    return false;
  }
};

City::City(const CityOptions& opts) : impl_(std::make_unique<Impl>(opts)) {}
City::~City() = default;

void City::Next(int64_t now_ms, rules::Event* ev) { impl_->Next(now_ms, ev); }

int City::device_count() const {
  const Impl& m = *impl_;
  return static_cast<int>(m.loops.size() + m.peds.size() + m.lamps.size() + m.luxes.size() +
                          m.cams.size() + m.wps.size() + m.wfs.size() + m.bins.size() +
                          m.apps.size() + m.vehicles.size());
}

uint64_t City::incidents_started() const { return impl_->started; }

const std::vector<std::string>& City::Districts() { return kDistricts; }

}  // namespace vigie::bench
