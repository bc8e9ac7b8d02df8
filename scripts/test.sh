#!/usr/bin/env bash
# Set up (first time only) and run the test suite.
source "$(dirname "$0")/env.sh" test
python -m pytest "$@"
