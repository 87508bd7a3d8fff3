# cuFFT for the CUDA FFT indexer (included by CMakeLists.txt inside the CUDA branch, after jfjoch_kernels).
# Looks in the CUDA toolkit (CUDA::cufft) and then in the nvidia-cufft wheel of the Python that builds us
# (site-packages/nvidia/cu13/{include,lib} or nvidia/cufft/{include,lib}). When found: links it to
# jfjoch_kernels and defines JFJOCH_HAVE_CUFFT; otherwise the CUDA indexer computes a direct DFT.
set(JFJOCH_HAVE_CUFFT OFF)
if(TARGET CUDA::cufft)
  target_link_libraries(jfjoch_kernels PUBLIC CUDA::cufft)
  set(JFJOCH_HAVE_CUFFT ON)
  set(_jfjoch_cufft_where "CUDA toolkit")
else()
  if(Python_EXECUTABLE)
    set(_jfjoch_py "${Python_EXECUTABLE}")
  else()
    find_package(Python3 COMPONENTS Interpreter QUIET)
    set(_jfjoch_py "${Python3_EXECUTABLE}")
  endif()
  set(_jfjoch_nv "")
  if(_jfjoch_py)
    execute_process(
      COMMAND "${_jfjoch_py}" -c
              "import importlib.util as u; s = u.find_spec('nvidia'); print(';'.join(s.submodule_search_locations) if s else '')"
      OUTPUT_VARIABLE _jfjoch_nv OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  set(_jfjoch_inc_hints "")
  set(_jfjoch_lib_hints "")
  foreach(_d IN LISTS _jfjoch_nv)
    list(APPEND _jfjoch_inc_hints "${_d}/cu13/include" "${_d}/cufft/include")
    list(APPEND _jfjoch_lib_hints "${_d}/cu13/lib" "${_d}/cufft/lib")
  endforeach()
  find_path(JFJOCH_CUFFT_INCLUDE_DIR cufft.h HINTS ${_jfjoch_inc_hints} NO_DEFAULT_PATH)
  find_library(JFJOCH_CUFFT_LIBRARY NAMES cufft libcufft.so.12 libcufft.so.11 HINTS ${_jfjoch_lib_hints}
               NO_DEFAULT_PATH)
  if(JFJOCH_CUFFT_INCLUDE_DIR AND JFJOCH_CUFFT_LIBRARY)
    add_library(jfjoch_cufft SHARED IMPORTED)
    set_target_properties(jfjoch_cufft PROPERTIES IMPORTED_LOCATION "${JFJOCH_CUFFT_LIBRARY}"
                                                  INTERFACE_INCLUDE_DIRECTORIES "${JFJOCH_CUFFT_INCLUDE_DIR}")
    target_link_libraries(jfjoch_kernels PUBLIC jfjoch_cufft)
    # installed wheel: _core sits in site-packages/jfjoch, the cuFFT wheel in site-packages/nvidia/...
    get_filename_component(_jfjoch_cufft_libdir "${JFJOCH_CUFFT_LIBRARY}" DIRECTORY)
    get_filename_component(_jfjoch_cufft_sub "${_jfjoch_cufft_libdir}" DIRECTORY)
    get_filename_component(_jfjoch_cufft_sub "${_jfjoch_cufft_sub}" NAME)
    list(APPEND CMAKE_INSTALL_RPATH "$ORIGIN/../nvidia/${_jfjoch_cufft_sub}/lib")
    set(JFJOCH_HAVE_CUFFT ON)
    set(_jfjoch_cufft_where "${JFJOCH_CUFFT_LIBRARY}")
  endif()
endif()
if(JFJOCH_HAVE_CUFFT)
  target_compile_definitions(jfjoch_kernels PRIVATE JFJOCH_HAVE_CUFFT=1)
  message(STATUS "jfjoch: cuFFT found (${_jfjoch_cufft_where})")
else()
  message(STATUS "jfjoch: cuFFT not found; the CUDA FFT indexer uses a direct DFT")
endif()
