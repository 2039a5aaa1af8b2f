# Empty dependencies file for proxyd_core.
# This may be replaced when dependencies are built.
