# CMake toolchain file: proxyd for arm64 (aarch64) on an amd64 Debian 12, with
# Debian's cross compiler (gcc-aarch64-linux-gnu) and a sysroot of arm64
# packages extracted from Debian's archive (no dpkg --add-architecture needed):
#
#   mmdebstrap --variant=extract --arch=arm64 \
#       --include=libc6-dev,libevent-dev,libjemalloc-dev bookworm SYSROOT
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#       -DPROXYD_SYSROOT=SYSROOT
#
# docker/build-images --arch arm64 does both (docs/deployment.md). Unit tests
# are not built (Check is not in the sysroot); the binary runs under
# qemu-aarch64 -L SYSROOT (package qemu-user), which is also the emulator CMake
# records for it.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

# read again by every try_compile: pass the sysroot down to them
set(PROXYD_SYSROOT "$ENV{PROXYD_SYSROOT}" CACHE PATH "arm64 sysroot (mmdebstrap --variant=extract)")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PROXYD_SYSROOT)
if(NOT PROXYD_SYSROOT OR NOT EXISTS "${PROXYD_SYSROOT}/usr/include/event2/event.h")
  message(FATAL_ERROR "PROXYD_SYSROOT='${PROXYD_SYSROOT}' is not an arm64 sysroot with libevent-dev: "
    "make one with mmdebstrap --variant=extract (see ${CMAKE_CURRENT_LIST_FILE})")
endif()
set(CMAKE_SYSROOT "${PROXYD_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${PROXYD_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# the host's pkg-config, reading the sysroot's .pc files only, paths prefixed with it
set(ENV{PKG_CONFIG_LIBDIR} "${PROXYD_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${PROXYD_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${PROXYD_SYSROOT}")
# libjemalloc.so needs libstdc++ and libgcc_s: the linker finds them in the sysroot
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${PROXYD_SYSROOT}/usr/lib/aarch64-linux-gnu")
find_program(PROXYD_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(PROXYD_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${PROXYD_QEMU_AARCH64};-L;${PROXYD_SYSROOT}")
endif()
