# Empty compiler generated dependencies file for check_http_parse.
# This may be replaced when dependencies are built.
