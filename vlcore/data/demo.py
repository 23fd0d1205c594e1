"""The embedded demo's fine-tuning manifests, by name: a missing one gets an
error that says how to make it.

The demo corpus and its task manifests are made by ``data_prep``
(``data_prep.make_demo_corpus``, ``data_prep.make_demo_tasks``; building on
first use: ``data_prep.demo``); the training side knows only their names.
"""
import os

# each as <task>_{train,test}.jsonl, written by data_prep.make_demo_tasks
DEMO_TASKS = ("vqa", "snli_ve", "sst2", "cola", "stsb", "mnli", "image_cls")


def task_file_names():
    """The file names ``python -m data_prep.make_demo_tasks`` writes."""
    return {f"{t}_{split}.jsonl" for t in DEMO_TASKS for split in ("train", "test")} | {"vqa_testdev.jsonl"}


def missing_file_hint(path):
    """For a missing ``path`` that is one of the demo's task manifests, what
    to run to make it (appended to the "no such file" error); else ""."""
    if os.path.basename(path) not in task_file_names():
        return ""
    tasks_dir = os.path.dirname(os.path.normpath(path)) or "."
    if os.path.basename(tasks_dir) == "tasks":  # the default place, <corpus>/tasks
        cmd = f"python -m data_prep.make_demo_tasks {os.path.dirname(tasks_dir) or '.'}"
    else:
        cmd = f"python -m data_prep.make_demo_tasks DEMO_CORPUS_DIR --out {tasks_dir}"
    return f" -- a demo task manifest: make it with `{cmd}`"


def no_such_file(what, path):
    """The FileNotFoundError for a missing data file ``path`` (config key
    ``what``), saying how to make it when it is one of the fine-tuning
    demo's task manifests."""
    return FileNotFoundError(f"{what}: {path!r}: no such file{missing_file_hint(str(path))}")
