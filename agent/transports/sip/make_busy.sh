#!/bin/sh
# Regenerates busy.wav, what a trunk set to `busy_message` hears when it is over its call limit (the SIP endpoint
# answers, plays it, then hangs up: agent/transports/sip/endpoint.py). flite's slt voice, 8 kHz mono 16-bit (the
# phone line's rate: no resampling at run time), a 0.3 s lead-in. Needs flite and sox.
# Run from anywhere: sh agent/transports/sip/make_busy.sh
set -eu
here=$(dirname "$0")
tmp=$(mktemp -d)
flite -voice slt -t "Thank you for calling. All of our lines are busy right now. Please call again in a few minutes. Goodbye." \
  -o "$tmp/busy.wav"
sox "$tmp/busy.wav" -r 8000 -c 1 -b 16 "$here/busy.wav" pad 0.3 0.2 gain -n -3
rm -r "$tmp"
