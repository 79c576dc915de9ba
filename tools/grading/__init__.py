"""Graded assignments: what ``make assignments`` (tools/assignments.py) and ``make grade`` (tools/grade.py) use.

    course      the course's notebooks as exercises (solution cell + check cell), nbgrader ids and metadata
    submission  finding submissions (nbgrader's layout, an LMS folder); per exercise: tampered, blank, or a program
    slicing     which statements an exercise needs (symtable), so that no demonstration runs while grading
    jobs        one grading run: job specs, hidden seeds, the workers' preload and warm-up, the pool
    worker      the grader's side of a worker process; zygote: the worker itself, forking one job per exercise
    sandbox     Linux namespaces, a read-only root, limits, dropped privileges
    harness     inside a job: the units, the graded check_function, the verdict
    guards      the tripwire on the reference and the integrity guard
    hidden      the lecturer's hidden variants of each check (and points)
    report      grades.csv, feedback pages, the summary; gradebook: nbgrader's gradebook and autograded/ folder

With ``tools/`` on ``sys.path`` these import as ``grading.<module>``.
"""
