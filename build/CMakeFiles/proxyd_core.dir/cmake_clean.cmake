file(REMOVE_RECURSE
  "CMakeFiles/proxyd_core.dir/src/access_log.c.o"
  "CMakeFiles/proxyd_core.dir/src/access_log.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/acl.c.o"
  "CMakeFiles/proxyd_core.dir/src/acl.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/client.c.o"
  "CMakeFiles/proxyd_core.dir/src/client.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/dns.c.o"
  "CMakeFiles/proxyd_core.dir/src/dns.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/errors.c.o"
  "CMakeFiles/proxyd_core.dir/src/errors.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/http_msg.c.o"
  "CMakeFiles/proxyd_core.dir/src/http_msg.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/http_parse.c.o"
  "CMakeFiles/proxyd_core.dir/src/http_parse.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/log.c.o"
  "CMakeFiles/proxyd_core.dir/src/log.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/master.c.o"
  "CMakeFiles/proxyd_core.dir/src/master.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/upool.c.o"
  "CMakeFiles/proxyd_core.dir/src/upool.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/url.c.o"
  "CMakeFiles/proxyd_core.dir/src/url.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/worker.c.o"
  "CMakeFiles/proxyd_core.dir/src/worker.c.o.d"
  "libproxyd_core.a"
  "libproxyd_core.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/proxyd_core.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
