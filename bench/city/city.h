#pragma once
// City: a synthetic model of Dijon's sensors for the simulator (vigie-sim) and the load
// generator (vigie-load). It owns a catalogue of devices of every event kind of the example rule
// set (config/rules), spread over districts, zones and junctions with a realistic skew (a few
// busy junctions carry most of the traffic), plus *incidents* that start and end with time so
// that the rules fire and resolve: lamp faults, silent cameras, idle zones, congested junctions,
// pressure drops, bursts, night leaks, stalled buses, silent trucks, bins filling up and being
// emptied, clusters of citizens' reports.
//
// Event kinds and fields (exactly what config/rules expects):
//   traffic {device loop-N, zone, junction, lane, vehicles, speed}   (speed absent if vehicles 0)
//   pedestrian {device ped-N, crossing}
//   lamp.status {device lamp-N, zone, status ok|fault, power_w}
//   lux {device lux-N, zone, lux}
//   camera.heartbeat {device cam-N, zone}
//   camera.status {device cam-N, zone, status ok|fault, code}
//   water.pressure {device wp-N, district, bar}
//   water.flow {device wf-N, district, m3h}
//   bin.level {device bin-N, district, fill}
//   report {device app-N, district, category pothole|graffiti|lighting|waste, severity 1-3}
//   vehicle.position {device bus-N|police-N|waste-N, fleet, district, speed}
//
// Deterministic for a given seed and sequence of Next() instants. Not thread-safe: one City per
// thread. Next() reuses the capacity of the Event it fills.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rules/event.h"

namespace vigie::bench {

struct CityOptions {
  int devices = 5000;      // total number of devices, all kinds together (at least ~200)
  uint64_t seed = 1;
  bool incidents = true;   // faults and recoveries; off gives a steady, healthy city
  bool with_ts = true;     // stamp events with ts = the instant given to Next(); off: no ts
                           // (the daemon then uses its ingest time: for pre-built buffers)
};

class City {
 public:
  explicit City(const CityOptions& opts);
  ~City();
  City(const City&) = delete;
  City& operator=(const City&) = delete;

  // Fills *ev with the next event at instant now_ms (ms since the Unix epoch). Instants must not
  // go backwards. Incidents start and end as now_ms advances.
  void Next(int64_t now_ms, rules::Event* ev);

  int device_count() const;
  // Number of incidents started so far (for the simulator's summary line).
  uint64_t incidents_started() const;
  // The names of districts, zones and junctions (for rule generators and tests).
  static const std::vector<std::string>& Districts();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigie::bench
