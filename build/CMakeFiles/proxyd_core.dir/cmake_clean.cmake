file(REMOVE_RECURSE
  "CMakeFiles/proxyd_core.dir/src/http_msg.c.o"
  "CMakeFiles/proxyd_core.dir/src/http_msg.c.o.d"
  "CMakeFiles/proxyd_core.dir/src/http_parse.c.o"
  "CMakeFiles/proxyd_core.dir/src/http_parse.c.o.d"
  "libproxyd_core.a"
  "libproxyd_core.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/proxyd_core.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
