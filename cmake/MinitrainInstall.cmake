# Exported package config with one component per library: a user's project does
#   find_package(minitrain CONFIG REQUIRED COMPONENTS core nn)
# and finds only the packages those components need, or find_package(minitrain CONFIG REQUIRED) for all
# of them and minitrain::minitrain.
include(CMakePackageConfigHelpers)
set(MINITRAIN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/minitrain)

# The package that provides each third-party target a component's link interface can name. A new
# dependency must be added here (and to _minitrain_find_package in minitrainConfig.cmake.in).
function(minitrain_package_of target out)
  set(packages BLAS::BLAS=BLAS OpenMP::OpenMP_CXX=OpenMP spdlog::spdlog=spdlog MPI::MPI_CXX=MPI
               xtensor=xtensor nlohmann_json::nlohmann_json=nlohmann_json)
  foreach(entry IN LISTS packages)
    string(REPLACE "=" ";" pair "${entry}")
    list(GET pair 0 name)
    if(name STREQUAL target)
      list(GET pair 1 package)
      set(${out} ${package} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "MinitrainInstall.cmake: no package known for link dependency '${target}'; add it to "
                      "minitrain_package_of and to minitrainConfig.cmake.in")
endfunction()

# What a consumer needs for each component, read from the link interface the export will carry: a
# public dependency always; a private library only as $<LINK_ONLY:...>, which CMake writes for static
# libraries (a shared one has resolved it already); header-only build dependencies
# ($<BUILD_INTERFACE:...>) never.
get_property(MINITRAIN_COMPONENTS GLOBAL PROPERTY MINITRAIN_COMPONENTS)
set(MINITRAIN_COMPONENT_TABLE "set(_minitrain_components ${MINITRAIN_COMPONENTS})")
foreach(part IN LISTS MINITRAIN_COMPONENTS)
  get_target_property(interface minitrain_${part} INTERFACE_LINK_LIBRARIES)
  if(NOT interface)  # a shared library with private dependencies only
    set(interface "")
  endif()
  set(components "")
  set(packages "")
  foreach(item IN LISTS interface)
    # ::@(...) and ::@ bracket the entries a target_link_libraries call from another directory added.
    if(item MATCHES "BUILD_INTERFACE" OR item MATCHES "^::@")
      continue()
    endif()
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.+)>$" "\\1" dep "${item}")
    if(dep MATCHES "^minitrain(::|_)(.+)$")
      list(APPEND components ${CMAKE_MATCH_2})
    else()
      minitrain_package_of(${dep} package)
      list(APPEND packages ${package})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES packages)
  string(APPEND MINITRAIN_COMPONENT_TABLE "\nset(_minitrain_${part}_components ${components})"
                                          "\nset(_minitrain_${part}_packages ${packages})")
  install(EXPORT minitrain-${part}-targets NAMESPACE minitrain:: DESTINATION ${MINITRAIN_CMAKE_DIR})
  message(STATUS "minitrain: package component ${part}: components [${components}], packages [${packages}]")
endforeach()
get_target_property(umbrella minitrain INTERFACE_LINK_LIBRARIES)
list(TRANSFORM umbrella REPLACE "^minitrain_" "")
string(APPEND MINITRAIN_COMPONENT_TABLE "\nset(_minitrain_umbrella_components ${umbrella})")
install(EXPORT minitrain-all-targets NAMESPACE minitrain:: DESTINATION ${MINITRAIN_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/minitrainConfig.cmake.in
  ${PROJECT_BINARY_DIR}/minitrainConfig.cmake INSTALL_DESTINATION ${MINITRAIN_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/minitrainConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/minitrainConfig.cmake ${PROJECT_BINARY_DIR}/minitrainConfigVersion.cmake
  DESTINATION ${MINITRAIN_CMAKE_DIR})
