file(REMOVE_RECURSE
  "CMakeFiles/proxyd.dir/src/main.c.o"
  "CMakeFiles/proxyd.dir/src/main.c.o.d"
  "proxyd"
  "proxyd.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/proxyd.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
