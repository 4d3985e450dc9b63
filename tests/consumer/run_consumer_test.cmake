# ctest driver: install the build tree into a scratch prefix, build the consumer project against it
# with find_package(minitrain CONFIG), and run it.
set(prefix "${BUILD_DIR}/consumer-test/install")
set(consumer_build "${BUILD_DIR}/consumer-test/build")
file(REMOVE_RECURSE "${BUILD_DIR}/consumer-test")
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${prefix}"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR};-B;${consumer_build};-DCMAKE_PREFIX_PATH=${prefix};-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${consumer_build}"
    "${consumer_build}/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test step failed: ${step}\n${out}\n${err}")
  endif()
endforeach()
message(STATUS "${out}")
