# bpf_skeleton(NAME SOURCES a.bpf.c b.bpf.c ... [DEPENDS headers...])
#
# Compiles each source with clang for the BPF target (CO-RE, BTF), links them
# into one object with `bpftool gen object`, generates `NAME.skel.h` with
# `bpftool gen skeleton`, and exposes it through the INTERFACE target
# `NAME_skel`. vmlinux.h comes from FAULTPROBE_VMLINUX_H when set, else from
# the build machine's /sys/kernel/btf/vmlinux.

find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(FAULTPROBE_VMLINUX_H "" CACHE FILEPATH
    "vmlinux.h to compile the probe against (empty: generate from /sys/kernel/btf/vmlinux)")

set(_bpf_gen_dir ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${_bpf_gen_dir})

if(FAULTPROBE_VMLINUX_H)
  configure_file(${FAULTPROBE_VMLINUX_H} ${_bpf_gen_dir}/vmlinux.h COPYONLY)
  add_custom_target(vmlinux_h)
else()
  if(NOT EXISTS /sys/kernel/btf/vmlinux)
    message(FATAL_ERROR
      "/sys/kernel/btf/vmlinux is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF). "
      "Build on a kernel with BTF or pass -DFAULTPROBE_VMLINUX_H=/path/to/vmlinux.h")
  endif()
  add_custom_command(
    OUTPUT ${_bpf_gen_dir}/vmlinux.h
    COMMAND ${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${_bpf_gen_dir}/vmlinux.h.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${_bpf_gen_dir}/vmlinux.h.tmp ${_bpf_gen_dir}/vmlinux.h
    COMMENT "Generating vmlinux.h from /sys/kernel/btf/vmlinux"
    VERBATIM)
  add_custom_target(vmlinux_h DEPENDS ${_bpf_gen_dir}/vmlinux.h)
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(_bpf_arch x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(_bpf_arch arm64)
else()
  set(_bpf_arch ${CMAKE_SYSTEM_PROCESSOR})
endif()

function(bpf_skeleton NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS" ${ARGN})
  set(objs "")
  foreach(src IN LISTS ARG_SOURCES)
    get_filename_component(stem ${src} NAME_WE)
    set(obj ${_bpf_gen_dir}/${stem}.bpf.o)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${_bpf_arch}
              -Wall -Werror -Wno-unused-function
              -I${_bpf_gen_dir} -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/bpf
              -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${src} ${ARG_DEPENDS} vmlinux_h ${_bpf_gen_dir}/vmlinux.h
      COMMENT "BPF ${src}"
      VERBATIM)
    list(APPEND objs ${obj})
  endforeach()
  set(linked ${_bpf_gen_dir}/${NAME}.bpf.o)
  set(skel ${_bpf_gen_dir}/${NAME}.skel.h)
  add_custom_command(
    OUTPUT ${linked}
    COMMAND ${BPFTOOL} gen object ${linked} ${objs}
    DEPENDS ${objs}
    COMMENT "Linking BPF object ${NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${linked} name ${NAME} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${linked}
    COMMENT "Generating ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${_bpf_gen_dir})
endfunction()
