file(REMOVE_RECURSE
  "CMakeFiles/check_acl.dir/unit/check_acl.c.o"
  "CMakeFiles/check_acl.dir/unit/check_acl.c.o.d"
  "check_acl"
  "check_acl.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/check_acl.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
