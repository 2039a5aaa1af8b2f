file(REMOVE_RECURSE
  "CMakeFiles/check_url.dir/unit/check_url.c.o"
  "CMakeFiles/check_url.dir/unit/check_url.c.o.d"
  "check_url"
  "check_url.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/check_url.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
