# Tests are found by name, so adding one needs no edit here:
#   tests/test_NAME.c   a cmocka program, run directly;
#   tests/test_NAME.sh  a bash script (real mpirun, real files, real SLURM), run with
#                       the environment below; a script exits 0 on pass, non-zero on fail.
#   tests/support/*.c   helpers shared by tests (naive reference kernels, fixtures).
# Every test runs with the variables that real MPI on this machine needs (TOOLCHAIN.md).

# NUPES_SANITIZED=1 in the AddressSanitizer + UBSan build: the tests that run lighter there
# (test_blas_kernels, test_quality) read it.
if(NUPES_SANITIZE)
  set(NUPES_TEST_SANITIZED 1)
else()
  set(NUPES_TEST_SANITIZED 0)
endif()
set(NUPES_TEST_ENV
  "NUPES_SANITIZED=${NUPES_TEST_SANITIZED}"
  "NUPES_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "NUPES_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "NUPES_BIN=$<TARGET_FILE:nupes-mpi>"
  "NUPES_DATA=${CMAKE_SOURCE_DIR}/data"
  "NUPES_TOOLS_DIR=${CMAKE_BINARY_DIR}/tools"
  "MPIEXEC=${MPIEXEC_EXECUTABLE}"
  "HDF5_PLUGIN_PATH=${CMAKE_BINARY_DIR}/plugins"
  "OMPI_ALLOW_RUN_AS_ROOT=1"
  "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
  "OMPI_MCA_rmaps_base_oversubscribe=1"
  "OMPI_MCA_btl_vader_single_copy_mechanism=none"
  "OPENBLAS_NUM_THREADS=1"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

file(GLOB NUPES_TEST_SUPPORT CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/support/*.c)
add_library(nupes_test_support STATIC ${NUPES_TEST_SUPPORT} ${CMAKE_SOURCE_DIR}/tests/support/empty.c)
target_include_directories(nupes_test_support PUBLIC ${CMAKE_SOURCE_DIR}/tests/support)
target_link_libraries(nupes_test_support PUBLIC nupes_mpi PkgConfig::CMOCKA)

# Helper executables for the shell tests: tests/tools/NAME.c -> $NUPES_TOOLS_DIR/NAME.
file(GLOB NUPES_TEST_TOOLS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/tools/*.c)
foreach(src ${NUPES_TEST_TOOLS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE nupes_test_support)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tools)
endforeach()

file(GLOB NUPES_TEST_C CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.c)
foreach(src ${NUPES_TEST_C})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE nupes_test_support)
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${NUPES_TEST_ENV}" TIMEOUT 1800)
endforeach()

file(GLOB NUPES_TEST_SH CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.sh)
foreach(src ${NUPES_TEST_SH})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME ${name} COMMAND bash ${src} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  # Timeouts catch hangs, never slowness: under ASan with two CPU burners and another CI
  # beside it, test_quality took over 900 s (~300 s quiet); every wait inside the scripts
  # has its own bound, so a generous limit here costs nothing on a healthy run.
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${NUPES_TEST_ENV}" TIMEOUT 2700)
  # Scripts that start daemons (SLURM) must not run beside each other; beside any other
  # test they may (RUN_SERIAL left a core idle for their ~100 s in each pass).
  if(name MATCHES "slurm")
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK slurm LABELS slurm)
  endif()
endforeach()

