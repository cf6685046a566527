"""A gs:// constant, derived with f-strings, %, .format and +, reaches local-disk calls."""

import os
import shutil

ROOT = "gs://recs-artifacts/pipeline_root"


def latest_run():
    runs = os.listdir(f"{ROOT}/runs")  # <-
    return sorted(runs)[-1]


def copy_schema(run, local_dir):
    schema = "%s/%s/schema.pbtxt" % (ROOT, run)
    shutil.copyfile(schema, os.path.join(local_dir, "schema.pbtxt"))  # <-
    marker = "{}/{}/_SUCCESS".format(ROOT, run)
    return os.path.isfile(marker)  # <-


def size_of(run):
    return os.path.getsize(ROOT + "/" + run + "/model.tar")  # <-
