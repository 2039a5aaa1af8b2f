
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/src/access_log.c" "CMakeFiles/proxyd_core.dir/src/access_log.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/access_log.c.o.d"
  "/work/main/src/acl.c" "CMakeFiles/proxyd_core.dir/src/acl.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/acl.c.o.d"
  "/work/main/src/client.c" "CMakeFiles/proxyd_core.dir/src/client.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/client.c.o.d"
  "/work/main/src/dns.c" "CMakeFiles/proxyd_core.dir/src/dns.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/dns.c.o.d"
  "/work/main/src/errors.c" "CMakeFiles/proxyd_core.dir/src/errors.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/errors.c.o.d"
  "/work/main/src/http_msg.c" "CMakeFiles/proxyd_core.dir/src/http_msg.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/http_msg.c.o.d"
  "/work/main/src/http_parse.c" "CMakeFiles/proxyd_core.dir/src/http_parse.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/http_parse.c.o.d"
  "/work/main/src/log.c" "CMakeFiles/proxyd_core.dir/src/log.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/log.c.o.d"
  "/work/main/src/master.c" "CMakeFiles/proxyd_core.dir/src/master.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/master.c.o.d"
  "/work/main/src/upool.c" "CMakeFiles/proxyd_core.dir/src/upool.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/upool.c.o.d"
  "/work/main/src/url.c" "CMakeFiles/proxyd_core.dir/src/url.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/url.c.o.d"
  "/work/main/src/worker.c" "CMakeFiles/proxyd_core.dir/src/worker.c.o" "gcc" "CMakeFiles/proxyd_core.dir/src/worker.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/CMakeFiles/llhttp.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
