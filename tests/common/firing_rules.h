#pragma once
// Rules for the allocation tests of the output path (tests/rules/alloc, tests/daemon/alloc): they
// change state often when `traffic` speeds move around 40 km/h (the pipeline test's stream gets
// one output per five or six events). Commands with parameters, alerts with labels that fire and
// resolve, `otherwise`, a windowed rule, and texts longer than std::string keeps inline (rule
// names, targets, summaries, a label), the ones that would need the heap. Grouped by device and
// by junction, so that the daemon copies events to more than one shard.
namespace vigie::testing {

inline constexpr char kFiringRules[] = R"(rules:
  - name: traffic-fast-on-a-junction-approach
    on: traffic
    when: speed > 40
    then:
      - command: {target: "lights/junction/{junction}/approach/{device}", action: extend-green-phase, seconds: 10, lane: "{lane}"}
      - alert: {severity: warning, summary: "device {device} at junction {junction} reports {speed} km/h", labels: {junction: "{junction}", kind: traffic}}
    otherwise:
      - command: {target: "lights/junction/{junction}/approach/{device}", action: restore-green-phase}
  - name: junction-average-speed-is-high
    on: traffic
    group_by: junction
    window: {count: 3}
    when: avg(speed) > 41
    then:
      - alert: {severity: info, summary: "junction {junction} average speed above 41 km/h", labels: {junction: "{junction}", rule: "{rule}"}}
)";

}  // namespace vigie::testing
