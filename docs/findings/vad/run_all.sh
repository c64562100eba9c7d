#!/bin/bash
set -e
cd /tmp/vad-study
PY=/work/main/.venv/bin/python
export OMP_NUM_THREADS=1
$PY check_official.py 2>/dev/null
$PY study.py 2>/dev/null
$PY report.py > out/report.md
$PY rules.py > out/rules.md 2>/dev/null
$PY final.py > out/final.md 2>/dev/null
$PY margins.py > out/margins.txt
$PY speed.py 2>/dev/null > out/speed.md
$PY load_time.py 2>/dev/null >> out/speed.md
