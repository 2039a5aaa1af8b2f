# Empty dependencies file for check_url.
# This may be replaced when dependencies are built.
