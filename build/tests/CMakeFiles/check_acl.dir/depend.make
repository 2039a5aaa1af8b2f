# Empty dependencies file for check_acl.
# This may be replaced when dependencies are built.
