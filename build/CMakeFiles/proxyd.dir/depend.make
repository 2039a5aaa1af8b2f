# Empty dependencies file for proxyd.
# This may be replaced when dependencies are built.
