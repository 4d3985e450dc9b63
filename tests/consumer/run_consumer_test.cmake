# ctest driver, one STEP per test: `install` installs the build tree into a scratch prefix (a ctest
# fixture); each other step configures the consumer project (CMakeLists.txt here) against it in one shape:
#   core     - spdlog, nlohmann_json, MPI and xtensor unfindable: COMPONENTS core must not look for
#              them; builds, runs
#   full     - everything, as a user who asks for no components; builds, runs
#   unknown  - configuring fails, naming the component and the ones that exist
#   optional - COMPONENTS train with MPI unfindable configures; the optional distributed component loads
#              exactly when it does not need MPI (DISTRIBUTED_NEEDS_MPI: a static library built with MPI)
# Arguments: STEP, BUILD_DIR, SOURCE_DIR, DISTRIBUTED_NEEDS_MPI.
set(prefix "${BUILD_DIR}/consumer-test/install")
# Packages that core does not need.
set(unfindable -DCMAKE_DISABLE_FIND_PACKAGE_spdlog=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON
               -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON -DCMAKE_DISABLE_FIND_PACKAGE_xtensor=ON)

# run(<name> <expect: pass|fail> COMMAND ...): runs the command; `out` holds its output afterwards.
function(run name expect)
  cmake_parse_arguments(ARG "" "" "COMMAND" ${ARGN})
  execute_process(COMMAND ${ARG_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  set(out "${stdout}${stderr}" PARENT_SCOPE)
  if(expect STREQUAL "pass" AND NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test ${name} failed: ${ARG_COMMAND}\n${stdout}\n${stderr}")
  elseif(expect STREQUAL "fail" AND rc EQUAL 0)
    message(FATAL_ERROR "consumer test ${name} succeeded but must fail: ${ARG_COMMAND}\n${stdout}\n${stderr}")
  endif()
endfunction()

function(configure shape expect)
  file(REMOVE_RECURSE ${BUILD_DIR}/consumer-test/${shape})
  run(${shape} ${expect} COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR}/consumer-test/${shape}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DMINITRAIN_CONSUMER=${shape} ${ARGN})
  set(out "${out}" PARENT_SCOPE)
endfunction()

function(build_and_run shape expected_output)
  run(${shape} pass COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR}/consumer-test/${shape})
  run(${shape} pass COMMAND ${BUILD_DIR}/consumer-test/${shape}/consumer)
  if(NOT out MATCHES "${expected_output}")
    message(FATAL_ERROR "consumer test ${shape}: expected '${expected_output}', got:\n${out}")
  endif()
  message(STATUS "${shape}: ${out}")
endfunction()

if(STEP STREQUAL "install")
  file(REMOVE_RECURSE "${BUILD_DIR}/consumer-test")
  run(install pass COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
elseif(STEP STREQUAL "core")
  configure(core pass ${unfindable})
  build_and_run(core "consumer ok")
elseif(STEP STREQUAL "full")
  configure(full pass)
  build_and_run(full "full consumer ok")
elseif(STEP STREQUAL "unknown")
  configure(unknown fail)
  set(message "minitrain has no component 'no_such_component'; its components are: core, xtensor_interop, nn, data, train, distributed")
  string(REGEX REPLACE "[ \n]+" " " flat "${out}")  # CMake wraps the message at word boundaries
  string(FIND "${flat}" "${message}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "consumer test unknown: expected \"${message}\", got:\n${out}")
  endif()
elseif(STEP STREQUAL "optional")
  configure(optional pass -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON)
  if(DISTRIBUTED_NEEDS_MPI)
    set(expected "optional component distributed found: FALSE")
  else()
    set(expected "optional component distributed found: TRUE")
  endif()
  if(NOT out MATCHES "${expected}")
    message(FATAL_ERROR "consumer test optional: expected '${expected}', got:\n${out}")
  endif()
  message(STATUS "optional: ${expected}")
else()
  message(FATAL_ERROR "run_consumer_test.cmake: STEP=${STEP}: expected install, core, full, unknown or optional")
endif()
