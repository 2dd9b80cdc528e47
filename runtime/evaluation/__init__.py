"""Judging objective scores against MOS: the AVSVQA protocol (seed 000, section 三).

``data`` loads scores and MOS, ``mapping`` fits raw scores to MOS, ``protocol`` computes
PLCC/SROCC/KROCC/RMSE per group and overall, ``report`` renders the comparison and
``plots`` draws it. SciPy and matplotlib come with ``pip install 'vqa-rt[eval]'``.
"""
