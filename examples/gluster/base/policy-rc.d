#!/bin/sh
# Packages installed while an image is built must not start their services:
# there is no init system, and a container runs one service in the foreground.
exit 101
