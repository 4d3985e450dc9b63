# Exported package config: a user's project does find_package(minitrain CONFIG) and links
# minitrain::minitrain.
include(CMakePackageConfigHelpers)
set(MINITRAIN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/minitrain)
install(EXPORT minitrainTargets NAMESPACE minitrain:: DESTINATION ${MINITRAIN_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/minitrainConfig.cmake.in
  ${PROJECT_BINARY_DIR}/minitrainConfig.cmake INSTALL_DESTINATION ${MINITRAIN_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/minitrainConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/minitrainConfig.cmake ${PROJECT_BINARY_DIR}/minitrainConfigVersion.cmake
  DESTINATION ${MINITRAIN_CMAKE_DIR})
