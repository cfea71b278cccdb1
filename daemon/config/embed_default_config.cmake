# Build-time step (cmake -P): turns config/vigie.yaml into a C++ source holding its text, so the
# binary carries the default configuration. Inputs: IN (yaml path), OUT (generated .cc path).
file(READ "${IN}" text)
string(FIND "${text}" ")vigie_yaml\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )vigie_yaml\"")
endif()
set(content "// Generated from ${IN} by daemon/config/embed_default_config.cmake. Do not edit.
namespace vigie::daemon {
const char* DefaultConfigYaml() {
  return R\"vigie_yaml(${text})vigie_yaml\";
}
}  // namespace vigie::daemon
")
# Only touch the output when it changes, so an unchanged yaml does not rebuild.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${content}")
