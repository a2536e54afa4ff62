# The one-way dependency rule between components, checked over the sources (ctest: deps_check).
#   cmake -DCORDON_SOURCE_DIR=<repo> -P cmake/CheckDependencies.cmake
# Every #include of a component's public header (cordon/<component>/...) or of a guarded
# third-party library must be one the including component may use; an include that climbs out
# with "../" is refused everywhere. Exit status 1 with one line per breach.
#
# A component's files are the folder below (the first that matches); its own headers are always
# allowed, and its tests/ may use cordon::testing too. Black-box tests in tests/ are not checked.
cmake_minimum_required(VERSION 3.25)
if(NOT CORDON_SOURCE_DIR)
  message(FATAL_ERROR "CheckDependencies: pass -DCORDON_SOURCE_DIR=<repository root>")
endif()

# folder | component | what it may include besides itself. Most specific folder first.
set(_rules
  "common|common|"
  "job-specs/yaml|yaml|yaml-cpp"
  "job-specs|specs|common yaml"
  "kms-adapters|kms|common"
  "sandbox|sandbox|common"
  "orchestrator/audit|audit|common"
  "orchestrator/sealed|sealed|common kms"
  "orchestrator/images|images|common"
  "orchestrator/policy|policy|common specs yaml"
  "orchestrator/config|config|common yaml audit kms policy"
  "orchestrator/datasets|datasets|common specs yaml kms sealed"
  "orchestrator/runner|runner|common specs yaml kms sandbox audit sealed images config datasets"
  "orchestrator/daemon|daemon|common specs yaml kms sandbox audit sealed images policy config datasets runner boost"
  "orchestrator/cli|cli|common specs yaml kms audit sealed images config datasets runner daemon")

# The component an include names, or "" for one that is not guarded (the standard library,
# the project's private headers by plain name, unguarded third-party libraries).
function(_component_of include out)
  set(c "")
  if(include MATCHES "^cordon/([a-z_]+)/")
    set(c "${CMAKE_MATCH_1}")
  elseif(include MATCHES "^cordon/[^/]+$")
    set(c "common")
  elseif(include MATCHES "^yaml-cpp/")
    set(c "yaml-cpp")
  elseif(include MATCHES "^boost/")
    set(c "boost")
  endif()
  set(${out} "${c}" PARENT_SCOPE)
endfunction()

set(_breaches 0)
set(_files_checked 0)
set(_seen "")
foreach(rule IN LISTS _rules)
  string(REPLACE "|" ";" parts "${rule}")
  list(GET parts 0 dir)
  list(GET parts 1 component)
  list(LENGTH parts n)
  set(allowed "")
  if(n GREATER 2)
    list(GET parts 2 allowed)
    separate_arguments(allowed UNIX_COMMAND "${allowed}")
  endif()
  file(GLOB_RECURSE files RELATIVE "${CORDON_SOURCE_DIR}"
    "${CORDON_SOURCE_DIR}/${dir}/*.h" "${CORDON_SOURCE_DIR}/${dir}/*.cc" "${CORDON_SOURCE_DIR}/${dir}/*.c")
  foreach(f IN LISTS files)
    if(f IN_LIST _seen)
      continue()  # claimed by a more specific folder above
    endif()
    list(APPEND _seen "${f}")
    math(EXPR _files_checked "${_files_checked} + 1")
    set(may ${allowed} ${component})
    if(f MATCHES "/tests/")
      list(APPEND may testing)
    endif()
    file(STRINGS "${CORDON_SOURCE_DIR}/${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line IN LISTS lines)
      if(NOT line MATCHES "#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"]")
        continue()
      endif()
      set(inc "${CMAKE_MATCH_1}")
      if(inc MATCHES "(^|/)\\.\\./")
        message(NOTICE "${f}: #include \"${inc}\": no include may climb out of its folder with ../")
        math(EXPR _breaches "${_breaches} + 1")
        continue()
      endif()
      _component_of("${inc}" target)
      if(target STREQUAL "" OR target IN_LIST may)
        continue()
      endif()
      string(JOIN " " uses ${allowed})
      message(NOTICE "${f}: #include <${inc}>: ${component} may not depend on ${target} "
                     "(it may use: ${uses}; cmake/CheckDependencies.cmake)")
      math(EXPR _breaches "${_breaches} + 1")
    endforeach()
  endforeach()
endforeach()

if(_breaches GREATER 0)
  message(FATAL_ERROR "deps_check: ${_breaches} include(s) break the one-way dependency rule")
endif()
message(STATUS "deps_check: ${_files_checked} files, every include within its component's dependencies")
