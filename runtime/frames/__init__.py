"""Frames in: video readers (raw YUV, Y4M, ffmpeg-decoded containers), frame selection and sampling,
the options that choose and convert frames, YUV->RGB conversion, and synthetic test clips."""
