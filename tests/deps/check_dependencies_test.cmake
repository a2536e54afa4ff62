# deps_check must be able to fail: run it over tests/deps/bad/, a tree of one-file components
# each breaking the rule (and each including one header it may), and require exactly these
# breaches, no more (an allowed include reported would be a false alarm).
#   cmake -DCORDON_SOURCE_DIR=<repo> -P tests/deps/check_dependencies_test.cmake
cmake_minimum_required(VERSION 3.25)
execute_process(
  COMMAND ${CMAKE_COMMAND} -DCORDON_SOURCE_DIR=${CORDON_SOURCE_DIR}/tests/deps/bad
          -P ${CORDON_SOURCE_DIR}/cmake/CheckDependencies.cmake
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(out "${out}${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "deps_check passed a tree that breaks the rule:\n${out}")
endif()
set(expected
  "orchestrator/sealed/src/reaches_up.cc: #include <cordon/daemon/daemon.h>: sealed may not depend on daemon"
  "orchestrator/sealed/src/reaches_up.cc: #include <cordon/config/config.h>: sealed may not depend on config"
  "sandbox/src/reads_yaml.cc: #include <yaml-cpp/yaml.h>: sandbox may not depend on yaml-cpp"
  "sandbox/src/reads_yaml.cc: #include <cordon/specs/spec.h>: sandbox may not depend on specs"
  "kms-adapters/src/climbs.cc: #include \"../../orchestrator/runner/src/stage.h\": no include may climb"
  "kms-adapters/src/climbs.cc: #include <cordon/runner/runner.h>: kms may not depend on runner"
  "job-specs/src/knows_runner.cc: #include <cordon/audit/audit.h>: specs may not depend on audit"
  "job-specs/src/knows_runner.cc: #include <yaml-cpp/yaml.h>: specs may not depend on yaml-cpp"
  "orchestrator/audit/tests/only_in_tests.cc: #include <cordon/sealed/sealed.h>: audit may not depend on sealed")
foreach(line IN LISTS expected)
  string(FIND "${out}" "${line}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "deps_check did not report: ${line}\nit said:\n${out}")
  endif()
endforeach()
list(LENGTH expected n)
if(NOT out MATCHES "deps_check: ${n} include\\(s\\) break")
  message(FATAL_ERROR "deps_check reported other than the ${n} breaches expected:\n${out}")
endif()
message(STATUS "deps_check refused all ${n} breaches in tests/deps/bad and nothing else")
