#!/usr/bin/env bash
# Set up (first time only) and run the embedded demo: the shipped reference model on the synthetic shapes benchmark.
source "$(dirname "$0")/env.sh" all
mmeval run --config configs/demo.yaml "$@"
