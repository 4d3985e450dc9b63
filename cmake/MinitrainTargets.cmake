# Per-target settings shared by every minitrain library, test and example.

# Warnings for our own code only (never global flags, never -ffast-math: it turns isnan into false).
function(minitrain_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
endfunction()

# Code generation for our own targets. -fno-math-errno lets sqrt vectorise (nothing here reads errno);
# MINITRAIN_NATIVE adds -march=native so the kernels use the build machine's vector units (AVX2/FMA on
# the machines we benchmark on). Neither changes results between runs of one build.
function(minitrain_set_codegen target)
  target_compile_options(${target} PRIVATE -fno-math-errno)
  if(MINITRAIN_NATIVE)
    target_compile_options(${target} PRIVATE -march=native)
  endif()
endfunction()

function(minitrain_set_sanitizers target)
  if(MINITRAIN_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# minitrain_install_component(<part>): installs target minitrain_<part> as package component <part>,
# with an export file of its own, so that find_package(minitrain COMPONENTS <part>) loads only it and the
# components it links. MinitrainInstall.cmake works out what each component needs from its link
# interface.
function(minitrain_install_component part)
  install(TARGETS minitrain_${part} EXPORT minitrain-${part}-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  set_property(GLOBAL APPEND PROPERTY MINITRAIN_COMPONENTS ${part})
endfunction()

# add_minitrain_library(<part> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...] [PRIVATE_HEADER_ONLY_DEPS ...]):
# library minitrain_<part>, alias minitrain::<part>, headers in <part>/include, package component <part>.
# PUBLIC_DEPS: what the public headers include. PRIVATE_DEPS: libraries the .cpp files use (a user of a
# static minitrain still links them). PRIVATE_HEADER_ONLY_DEPS: header-only libraries the .cpp files
# use, which nothing after the build needs.
function(add_minitrain_library part)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS;PRIVATE_HEADER_ONLY_DEPS" ${ARGN})
  add_library(minitrain_${part} ${ARG_SOURCES})
  add_library(minitrain::${part} ALIAS minitrain_${part})
  set_target_properties(minitrain_${part} PROPERTIES EXPORT_NAME ${part} OUTPUT_NAME minitrain_${part})
  target_include_directories(minitrain_${part} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(minitrain_${part} PUBLIC cxx_std_17)
  target_link_libraries(minitrain_${part} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  foreach(dep IN LISTS ARG_PRIVATE_HEADER_ONLY_DEPS)
    target_link_libraries(minitrain_${part} PRIVATE $<BUILD_INTERFACE:${dep}>)
  endforeach()
  minitrain_set_warnings(minitrain_${part})
  minitrain_set_codegen(minitrain_${part})
  minitrain_set_sanitizers(minitrain_${part})
  minitrain_install_component(${part})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

# minitrain_executable(<name> SOURCES ... LIBS ...): a program with our warnings and sanitizers.
function(minitrain_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  minitrain_set_warnings(${name})
  minitrain_set_codegen(${name})
  minitrain_set_sanitizers(${name})
endfunction()
