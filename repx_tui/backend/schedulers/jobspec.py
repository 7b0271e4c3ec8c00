"""The job spec: everything the remote executor needs to run one job, as one JSON object.

The client builds it from the Lab (paths made absolute on the target, inputs turned into
small tagged entries); the executor (remote/executor.sh) resolves the entries that depend on
the target's files: `$out` templates of upstream jobs, the base path, inter-run metadata, and
the scatter-gather internals (work item, step outputs, worker-outs manifest).

Input entries, one per input mapping, all with "target" (the script's input name):
  {"job": ID, "template": "$out/x"}   an upstream job's output -> <base>/outputs/ID/out/x
  {"base": true}                      global store__base -> <base>
  {"path": P}                         inter-run: this Lab's own copy of the source run's metadata
  {"item": true}                      scatter-gather: this branch's work_item.json
  {"step": S, "template": ...}        scatter-gather: step S's output in the same branch
  {"worker_outs": true}               gather: the manifest of every branch's sink outputs
  {"scatter": true, "template": ...}  gather: a scatter output ($out = scatter/out)
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
from pathlib import Path
from typing import Any

from repx_tui.backend.config import Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Executable, Image, InputMapping, Job, Lab
from repx_tui.backend.layout import RemoteLayout, safe_component


def resolve_runtime(lab: Lab, job_id: str, target: Target, scheduler: str, explicit: str | None) -> str:
    """Upstream's order: the explicit choice; native without an image; the target's default if
    its scheduler table allows it; the table's first entry; native."""
    if lab.image_for_job(job_id) is None:
        return "native"  # nothing to run a container from
    if explicit:
        return explicit
    allowed = target.execution_types(scheduler)
    if target.default_execution_type and target.default_execution_type in allowed:
        return target.default_execution_type
    return allowed[0] if allowed else "native"


def output_template(job: Job, name: str) -> Any:
    """The output template downstream jobs see: gather's for scatter-gather, else main's."""
    exe = job.gather if job.is_scatter_gather else job.main
    if exe is None or name not in exe.outputs:
        raise SchedulerError(f"job {job.id} has no output '{name}' that other jobs could read")
    return exe.outputs[name]


def input_entry(lab: Lab, job: Job, mapping: InputMapping, layout: RemoteLayout) -> dict[str, Any] | None:
    entry: dict[str, Any] = {"target": mapping.target_input}
    if mapping.job_id == "self" and mapping.source_output and job.scatter is not None:
        entry.update(scatter=True, template=job.scatter.outputs.get(mapping.source_output))
    elif mapping.job_id and mapping.source_output:
        entry.update(job=mapping.job_id, template=output_template(lab.job(mapping.job_id), mapping.source_output))
    elif mapping.type == "global" or mapping.source_value == "store_base":
        entry.update(base=True)
    elif mapping.source_run:
        entry.update(path=layout.run_metadata(lab.lab_id, mapping.source_run))
    elif mapping.source == "scatter:work_item":
        entry.update(item=True)
    elif mapping.source and mapping.source.startswith("step:") and mapping.source_output:
        step = mapping.source.removeprefix("step:")
        entry.update(step=step, template=job.steps[step].outputs.get(mapping.source_output))
    elif mapping.source == "runner:worker_outputs":
        entry.update(worker_outs=True)
    else:
        return None
    if "template" in entry and not isinstance(entry["template"], str):
        return None  # a non-path output (e.g. worker__arg) is no file to point at
    return entry


def _unit(lab: Lab, job: Job, exe: Executable, layout: RemoteLayout, lab_root: str | None = None) -> dict[str, Any]:
    """A script and its inputs; the script from `lab_root` (the node-local copy) when given."""
    inputs = [e for m in exe.inputs if (e := input_entry(lab, job, m, layout)) is not None]
    path = posixpath.join(lab_root, exe.path) if lab_root else layout.artifact(exe.path)
    return {"path": path, "inputs": inputs}


def sink_step(job: Job) -> str:
    steps = job.steps
    used = {d for exe in steps.values() for d in exe.deps}
    sinks = sorted(set(steps) - used)
    if len(sinks) != 1:
        raise SchedulerError(f"scatter-gather job {job.id} must have exactly one final step, has {sinks}")
    return sinks[0]


def build_spec(
    lab: Lab,
    job_id: str,
    layout: RemoteLayout,
    target: Target,
    runtime: str,
    *,
    parallel: int = 1,
) -> dict[str, Any]:
    job = lab.job(job_id)
    image = lab.image_for_job(job_id)
    spec: dict[str, Any] = {
        "job": safe_component(job.id, "job id"),
        "base": layout.base,
        "stage_type": job.stage_type,
        "runtime": runtime,
        "params": dict(job.params),
        "image": _image(lab, image) if image and runtime != "native" else None,
        "node_local": layout.node_local,
        "mount_host_paths": target.mount_host_paths,
        "mount_paths": list(target.mount_paths),
    }
    lab_root = None
    if target.artifact_store == "node-local":  # the scripts run from the node's own copy of the Lab
        from repx_tui.backend.labstore import spec_entry

        spec["lab_tar"] = spec_entry(lab, layout)
        lab_root = spec["lab_tar"]["dir"]
    if job.is_scatter_gather:
        spec.update(_scatter_gather(lab, job, layout, parallel, lab_root))
    elif job.main is not None:
        spec["main"] = _unit(lab, job, job.main, layout, lab_root)
    else:
        raise SchedulerError(f"job {job.id} has no 'main' executable")
    return spec


def _image(lab: Lab, image: Image) -> dict[str, Any]:
    return {"tag": image.tag, "path": image.path, "layers_sha256": layers_sha256(lab.root, image)}


@functools.lru_cache(maxsize=64)
def layers_sha256(root: Path, image: Image) -> str:
    """sha256 of the lines "<digest> <sha256>\\n" of the image's layers, in order: one value in
    the spec (not one per layer: a job spec travels in every sbatch script) against which the
    executor checks the layers it finds on the target before it uses their bytes."""
    lines = "".join(f"{x.digest} {x.sha256 or sha256_file(root / x.store_path)}\n" for x in image.layers)
    return hashlib.sha256(lines.encode()).hexdigest()


def _scatter_gather(lab: Lab, job: Job, layout: RemoteLayout, parallel: int, lab_root: str | None) -> dict[str, Any]:
    assert job.scatter is not None and job.gather is not None
    sink = sink_step(job)
    work_items = job.scatter.outputs.get("work__items", "$out/work_items.json")
    return {
        "scatter": {**_unit(lab, job, job.scatter, layout, lab_root), "work_items": work_items},
        "steps": {name: _unit(lab, job, exe, layout, lab_root) for name, exe in job.steps.items()},
        "step_order": job.step_order,
        "sink": sink,
        "sink_outputs": {k: v for k, v in job.steps[sink].outputs.items() if isinstance(v, str)},
        "gather": _unit(lab, job, job.gather, layout, lab_root),
        "parallel": max(1, parallel),
    }


def host_tools_candidates(layout: RemoteLayout, lab: Lab) -> list[str]:
    """Where sync may have put the Lab's host tools, in order of preference."""
    return [
        layout.host_tools_bin(lab.host_tools_dir),
        posixpath.join(layout.artifacts, "host-tools", lab.host_tools_dir, "bin"),
    ]
