# Warnings every Cordon target is built with, and the sanitizer switch.
add_library(cordon_warnings INTERFACE)
target_compile_options(cordon_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  $<$<BOOL:${CORDON_WERROR}>:-Werror>)
# Hardening for the binaries themselves (they run as root and handle keys).
target_compile_options(cordon_warnings INTERFACE
  -fstack-protector-strong -fstack-clash-protection -fcf-protection
  $<$<AND:$<NOT:$<CONFIG:Debug>>,$<NOT:$<BOOL:${CORDON_SANITIZE}>>>:-D_FORTIFY_SOURCE=2>)
target_link_options(cordon_warnings INTERFACE -Wl,-z,relro,-z,now -Wl,-z,noexecstack)

if(CORDON_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# cordon_fuzzer(NAME SOURCES... LIBS ... [SEEDS dir...]): a libFuzzer target when CORDON_FUZZ is
# on. SEEDS (folders beside the fuzzer, usually fuzz/seeds) are listed, one absolute path a line,
# in <build>/fuzz-seeds/NAME.seeds, where scripts/fuzz finds them.
function(cordon_fuzzer name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS;SEEDS" ${ARGN})
  if(NOT CORDON_FUZZ)
    return()
  endif()
  set(seeds "")
  foreach(dir IN LISTS F_SEEDS)
    get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    string(APPEND seeds "${dir}\n")
  endforeach()
  file(WRITE "${CMAKE_BINARY_DIR}/fuzz-seeds/${name}.seeds" "${seeds}")
  add_executable(${name} ${F_SOURCES})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  add_dependencies(cordon_fuzzers ${name})
endfunction()
if(CORDON_FUZZ)
  add_custom_target(cordon_fuzzers)
endif()

# clang (used for libFuzzer) predates the __cpp_concepts value that libstdc++ 12
# checks before it declares std::expected, although clang 16 supports what
# <expected> needs; announce it so the same sources build with both compilers.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_compile_options(-D__cpp_concepts=202002L -Wno-macro-redefined -Wno-builtin-macro-redefined)
endif()
if(CORDON_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
endif()
