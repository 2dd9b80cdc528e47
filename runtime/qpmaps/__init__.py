"""QP maps: a frame's quantization-step map (learned model or block activity), its conversion to
integer delta-QP maps, and the map files encoders read."""
