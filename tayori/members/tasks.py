"""Background jobs of the members app (huey): CSV imports and exports.

Tasks carry only the job id; the Job row holds everything else and is the checkpoint.
"""

from huey.contrib.djhuey import db_task

from tayori.members import exporting, importing


@db_task()
def import_members(job_id: int) -> None:
    importing.execute(job_id)


@db_task()
def export_members(job_id: int) -> None:
    exporting.execute(job_id)
