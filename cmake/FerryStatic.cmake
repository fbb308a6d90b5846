# libferry.a for users: every object of the library (and the generated
# protobuf-c code) partially linked into one relocatable object, whose
# hidden symbols (everything but what ferry.h marks FERRY_API) are then made
# local. A plain archive of the objects would export each internal name
# (cpu_gemm, slab_init, graph_new, ...) into the user's program.
find_program(FERRY_OBJCOPY NAMES objcopy REQUIRED)
set(FERRY_LD ${CMAKE_LINKER})
if(NOT FERRY_LD)
  set(FERRY_LD ld)
endif()
set(FERRY_STATIC_DIR ${CMAKE_BINARY_DIR}/lib)
set(FERRY_STATIC_LIB ${FERRY_STATIC_DIR}/libferry.a)
add_custom_command(
  OUTPUT ${FERRY_STATIC_LIB}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${FERRY_STATIC_DIR}
  COMMAND ${FERRY_LD} -r -o ${CMAKE_BINARY_DIR}/ferry_all.o
          "$<TARGET_OBJECTS:ferry_objs>" "$<TARGET_OBJECTS:onnx_proto>"
  COMMAND ${FERRY_OBJCOPY} --localize-hidden ${CMAKE_BINARY_DIR}/ferry_all.o
  COMMAND ${CMAKE_COMMAND} -E rm -f ${FERRY_STATIC_LIB}
  COMMAND ${CMAKE_AR} rcs ${FERRY_STATIC_LIB} ${CMAKE_BINARY_DIR}/ferry_all.o
  DEPENDS ferry_objs onnx_proto "$<TARGET_OBJECTS:ferry_objs>" "$<TARGET_OBJECTS:onnx_proto>"
  COMMAND_EXPAND_LISTS
  COMMENT "libferry.a: one object, only the ferry_ API global")
add_custom_target(ferry_static ALL DEPENDS ${FERRY_STATIC_LIB})
