"""Fault injection: bad images, bad annotation files and random configs; every case has one exact outcome."""
