#!/bin/sh
# Regenerates hold.wav, the hold audio a warm handoff loops (agent/calls/handoff.py): a soft C-major arpeggio
# (C5 E5 G5 C6 G5 E5 C5 G4), each note 0.6 s of a sine with its octave at a quarter of the level, faded in and
# out, at -18 dBFS; 16 kHz mono 16-bit (the pipeline's rate: no resampling at run time), 4.8 s, 154 KB.
# Needs sox. Run from anywhere: sh agent/assets/make_hold.sh
set -eu
here=$(dirname "$0")
tmp=$(mktemp -d)
i=0
for f in 523.25 659.25 783.99 1046.50 783.99 659.25 523.25 392.00; do
  i=$((i + 1))
  sox -n -r 16000 -c 1 -b 16 "$tmp/n$i.wav" synth 0.6 sine "$f" sine "$(echo "$f * 2" | bc)" remix 1v0.8,2v0.2 \
    fade q 0.03 0.6 0.35 gain -n -18
done
sox "$tmp"/n1.wav "$tmp"/n2.wav "$tmp"/n3.wav "$tmp"/n4.wav "$tmp"/n5.wav "$tmp"/n6.wav "$tmp"/n7.wav \
  "$tmp"/n8.wav "$here/hold.wav"
rm -r "$tmp"
