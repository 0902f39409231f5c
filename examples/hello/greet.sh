#!/bin/sh
echo "$GREETING from a pybuild image ($(cat /app/build-info.txt))"
