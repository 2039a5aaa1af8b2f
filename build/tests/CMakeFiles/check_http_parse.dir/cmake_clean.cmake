file(REMOVE_RECURSE
  "CMakeFiles/check_http_parse.dir/unit/check_http_parse.c.o"
  "CMakeFiles/check_http_parse.dir/unit/check_http_parse.c.o.d"
  "check_http_parse"
  "check_http_parse.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/check_http_parse.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
