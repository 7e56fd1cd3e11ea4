# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... [-DCXX=...] [-DLAUNCHER=...]
#       [-DLINK_FLAGS=...] -P this (LINK_FLAGS: the sanitizers of a SANITIZE=address build):
# installs the build into WORK_DIR/prefix, then configures, builds and runs the out-of-tree
# consumer (tests/consumer) against it with find_package(cohort). Any failing step fails the test.
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "run_consumer_test.cmake needs -D${var}=...")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${name}: ok\n${out}")
endfunction()

step("install into ${prefix}" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
file(GLOB_RECURSE installed LIST_DIRECTORIES false RELATIVE ${prefix} ${prefix}/*)
foreach(f "cmake/cohort/cohortConfig.cmake" "cmake/cohort/cohortConfigVersion.cmake"
          "cmake/cohort/cohortTargets.cmake" "include/cohort/agent/parallel_state.h"
          "include/cohort/cohort/v1/agent.pb.h" "include/cohort/common/cohort_config.h"
          "bin/cohort-coordinator" "bin/cohort-agent" "bin/cohortctl")
  set(matches ${installed})
  list(FILTER matches INCLUDE REGEX "(^|/)${f}$")
  if(NOT matches)
    message(FATAL_ERROR "not installed: ${f} (under ${prefix})")
  endif()
endforeach()

set(configure_args -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
if(CXX)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX})
endif()
if(LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
if(LINK_FLAGS)
  list(APPEND configure_args -DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS})
endif()
step("configure the consumer" ${CMAKE_COMMAND} ${configure_args})
step("build the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step("run the consumer" ${WORK_DIR}/build/consumer)
