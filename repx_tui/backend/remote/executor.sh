#!/usr/bin/env bash
# Run ONE RepX job on this machine, with only the Lab's host tools.
#
#   executor.sh HOST_TOOLS_BIN SPEC_FILE
#
# SPEC_FILE is the job spec the client generated (see repx_tui/backend/schedulers/jobspec.py);
# it is read once, so /dev/stdin or a heredoc fd works. Leaves the upstream-compatible layout
# in <base>/outputs/<job>/: out/, repx/{inputs.json,parameters.json,stdout.log,stderr.log,
# exit_code,SUCCESS|FAIL} and one line in outputs/completions.jsonl.
#
# jq programs are single-quoted on purpose: their $names are jq variables, not shell ones.
# shellcheck disable=SC2016
set -euo pipefail

PATH="$1:$PATH"
export PATH
SPEC_FILE="$(mktemp)"
cat "$2" >"$SPEC_FILE"

# jq 1.6 takes ~0.1 s to start: read all scalar fields in one call, and resolve each unit
# (script path + inputs) in one call. The separator is \x1f, not a tab: a tab is IFS
# whitespace, so empty fields (no image, no node_local_path) would collapse.
IFS=$'\x1f' read -r BASE JOB RUNTIME STAGE_TYPE IMAGE_TAG IMAGE_PATH NODE_LOCAL MOUNT_HOST PARALLEL < <(
    jq -r '[.base, .job, (.runtime // "native"), (.stage_type // "simple"), (.image.tag // ""),
            (.image.path // ""), (.node_local // ""), (.mount_host_paths // false | tostring),
            (.parallel // 1 | tostring)] | join("\u001f")' "$SPEC_FILE"
)
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || PARALLEL=1
JOB_ROOT="$BASE/outputs/$JOB"
COMPLETIONS="$BASE/outputs/completions.jsonl"
PARAMS_FILE="$JOB_ROOT/repx/parameters.json"
REVISIONS="$(printf '%s\n' "$BASE"/artifacts/revision/*.json)"
CHILD_PID=""

note() { printf '[repx] %s\n' "$*" >>"$JOB_ROOT/repx/stdout.log"; }

# Print a unit's script path, then its inputs resolved to {target_input: path} (one line).
# KIND is main | scatter | gather | step (NAME = the step); CTX carries the paths only the
# executor knows: this branch's dir, the work item, the worker-outs manifest.
# An inter-run input is whichever revision file ends in metadata-<run>.json (upstream names
# may carry a hash prefix).
resolve_unit() { # KIND NAME CTX_JSON
    jq -r --arg kind "$1" --arg name "$2" --argjson ctx "$3" --arg base "$BASE" --arg revs "$REVISIONS" '
      def fill($dir): sub("^\\$out"; $dir);
      ($revs | split("\n")) as $files
      | (if $kind == "step" then .steps[$name] else .[$kind] end) as $unit
      | $unit.path,
        ($unit.inputs | map(
          if has("path") then {key: .target, value: .path}
          elif has("job") then .job as $j | {key: .target, value: (.template | fill("\($base)/outputs/\($j)/out"))}
          elif has("run") then .run as $r | {key: .target,
              value: ([$files[] | select(endswith("metadata-\($r).json"))][0] // error("no metadata for run \($r)"))}
          elif .base then {key: .target, value: $base}
          elif .item then {key: .target, value: $ctx.work_item}
          elif has("step") then .step as $s | {key: .target, value: (.template | fill("\($ctx.branch)/step-\($s)/out"))}
          elif .worker_outs then {key: .target, value: $ctx.manifest}
          elif .scatter then {key: .target, value: (.template | fill("\($ctx.job_root)/scatter/out"))}
          else empty end
        ) | from_entries | tojson)' "$SPEC_FILE"
}

atomic_write() { # PATH CONTENT
    printf '%s' "$2" >"$1.tmp.$$"
    mv -f "$1.tmp.$$" "$1"
}

mark() { # REPX_DIR SUCCESS|FAIL
    : >"$1/.$2.tmp.$$"
    mv -f "$1/.$2.tmp.$$" "$1/$2"
}

# --- runtimes -------------------------------------------------------------------------------

CACHE_ROOT="${NODE_LOCAL:-$BASE}"
ROOTFS=""
# What SUCCESS of a rootfs cache says. A rootfs unpacked by an older executor (one that ignored
# opaque whiteouts) lacks it and is unpacked again rather than trusted.
ROOTFS_FORMAT="repx-tui rootfs 2: OCI whiteouts"

# Unpack the image's layers once per node into <cache root>/cache/images/<tag>/rootfs.
# Concurrent jobs serialise on a lock; SUCCESS (holding ROOTFS_FORMAT) marks a complete rootfs. Only layers whose bytes
# match the Lab's are used, and each is extracted where nothing but the rootfs is writable.
prepare_rootfs() {
    local image_dir cache lock i targets layers
    image_dir="$BASE/artifacts/$IMAGE_PATH"
    cache="$CACHE_ROOT/cache/images/$IMAGE_TAG"
    ROOTFS="$cache/rootfs"
    for i in "$CACHE_ROOT/cache" "$CACHE_ROOT/cache/images" "$cache" "$ROOTFS"; do
        [[ ! -L "$i" ]] || refuse_image "$i is a symbolic link (repx-tui never makes one there)"
    done
    mkdir -p "$cache"
    lock="$CACHE_ROOT/cache/images/.$IMAGE_TAG.lock"
    exec 8>>"$lock"
    flock -x 8
    # SUCCESS also names the layers the rootfs was made from: a Lab that reuses an image's name
    # with other layers (one not built by Nix) gets a rootfs of its own layers, never another's.
    layers="$(jq -r '.image.layers_sha256 // ""' "$SPEC_FILE")"
    if [[ "$(cat -- "$cache/SUCCESS" 2>/dev/null)" != "$ROOTFS_FORMAT layers $layers" ]]; then
        rm -f -- "$cache/SUCCESS"
        rm -rf "$ROOTFS"
        mkdir -p "$ROOTFS"
        check_layers "$image_dir/manifest.json"
        for i in "${!LAYER_DIGESTS[@]}"; do
            layer_file "${LAYER_DIGESTS[i]}" "${LAYER_SHAS[i]}"
            extract_layer "$LAYER" "${LAYER_DIGESTS[i]}"
        done
        atomic_write "$cache/SUCCESS" "$ROOTFS_FORMAT layers $layers"
    fi
    # bwrap needs the bind targets to exist inside a read-only root; made in the rootfs sandbox
    # too, so a link in the image cannot make them on the host.
    targets=("$ROOTFS$BASE" "$ROOTFS/tmp" "$ROOTFS/dev" "$ROOTFS/proc")
    [[ -z "$NODE_LOCAL" ]] || targets+=("$ROOTFS$NODE_LOCAL")
    in_rootfs mkdir -p "${targets[@]}" 2>/dev/null \
        || refuse_image "a link in the image leads a bind mount point (base_path, /tmp, /dev or /proc) outside its root file system"
    flock -u 8
    exec 8>&-
}

# --- image layers: bytes used only once verified, members kept inside the rootfs ---------------
#
# A layer file is trusted through a record written right after its bytes were checked against
# a sha256: <root>/.repx/verified/<digest>-layer.tar = "<sha256> <inode> <size> <mtime> <ctime>"
# (root = base_path or node_local_path). The sync writes the same records (see
# repx_tui/backend/sync/layerstore.py): keep both formats the same.

refuse_image() { # MESSAGE: the job fails with one clear line in its stderr.log
    printf '[repx] FAIL: image %s: %s\n' "$IMAGE_TAG" "$*" >>"$JOB_ROOT/repx/stderr.log"
    exit 1
}

layer_id() { # FILE -> LAYER_ID = its identity; fails unless a regular file
    LAYER_ID=""
    if [[ -L "$1" || ! -f "$1" ]]; then return 1; fi
    LAYER_ID="$(find "$1" -maxdepth 0 -printf '%i %s %T@ %C@' 2>/dev/null)" || LAYER_ID=""
    [[ -n "$LAYER_ID" ]] || LAYER_ID="$(stat -c '%i %s %Y %Z' -- "$1")"
}

recorded_sha() { # FILE RECORD -> RECORDED_SHA = the sha256 the record vouches for, or "-"
    local sha id
    RECORDED_SHA=-
    if [[ -f "$2" ]] && layer_id "$1" && read -r sha id <"$2" && [[ "$id" == "$LAYER_ID" ]]; then
        RECORDED_SHA="$sha"
    fi
}

record_layer() { # FILE RECORD SHA256 IDENTITY_WHEN_CHECKED
    layer_id "$1" && [[ "$LAYER_ID" == "$4" ]] || return 1
    [[ ! -L "${2%/*}" && ! -L "${2%/*/*}" ]] || return 1
    mkdir -p -- "${2%/*}"
    printf '%s %s\n' "$3" "$4" >"$2.new-$$"
    mv -fT -- "$2.new-$$" "$2"
}

sha256_of() { # FILE
    local sum
    sum="$(sha256sum <"$1")" || return 1
    printf '%s' "${sum%% *}"
}

verify_layer() { # FILE RECORD SHA256 -> true once FILE's bytes are known to have SHA256
    local id
    recorded_sha "$1" "$2"
    [[ "$RECORDED_SHA" != "$3" ]] || return 0
    layer_id "$1" || return 1
    id="$LAYER_ID"
    [[ "$(sha256_of "$1")" == "$3" ]] || return 1
    record_layer "$1" "$2" "$3" "$id" || true
}

# The image's layers as this target has them (manifest.json), each with the sha256 its bytes
# must have: a node-local or shared record's, else the shared file's own. All of it is checked
# at once against the spec's layers_sha256, which the client computed from the Lab.
check_layers() { # MANIFEST -> sets LAYER_DIGESTS, LAYER_SHAS
    local want d i shared sha lines="" hashed=()
    want="$(jq -r '.image.layers_sha256 // ""' "$SPEC_FILE")"
    [[ -n "$want" ]] || refuse_image "the job spec has no layers_sha256 to check its layers against"
    mapfile -t LAYER_DIGESTS < <(jq -r '.[0].Layers[] | split("/")[0]' "$1")
    LAYER_SHAS=()
    for d in "${LAYER_DIGESTS[@]}"; do
        [[ "$d" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || refuse_image "its manifest names a layer '$d'"
        shared="$BASE/artifacts/store/$d-layer.tar"
        RECORDED_SHA=-
        [[ -z "$NODE_LOCAL" ]] || recorded_sha "$NODE_LOCAL/store/$d-layer.tar" "$NODE_LOCAL/.repx/verified/$d-layer.tar"
        [[ "$RECORDED_SHA" != - ]] || recorded_sha "$shared" "$BASE/.repx/verified/$d-layer.tar"
        sha="$RECORDED_SHA"
        hashed+=("")
        if [[ "$sha" == - ]] && layer_id "$shared"; then
            hashed[-1]="$LAYER_ID"
            sha="$(sha256_of "$shared")" || sha=-
        fi
        LAYER_SHAS+=("$sha")
        lines+="$d $sha"$'\n'
    done
    [[ "$(printf '%s' "$lines" | sha256_of /dev/stdin)" == "$want" ]] \
        || refuse_image "its layers on this target differ from the Lab's (one is missing, or its bytes differ): sync the Lab again"
    for i in "${!hashed[@]}"; do # now known right: recorded, so they are not hashed again
        [[ -z "${hashed[i]}" ]] || record_layer "$BASE/artifacts/store/${LAYER_DIGESTS[i]}-layer.tar" \
            "$BASE/.repx/verified/${LAYER_DIGESTS[i]}-layer.tar" "${LAYER_SHAS[i]}" "${hashed[i]}" || true
    done
}

# LAYER = a file of the layer whose bytes have SHA256: the node-local copy when verified, else
# the shared one, then copied to node_local_path for later runs.
layer_file() { # DIGEST SHA256
    local name="$1-layer.tar"
    if [[ -n "$NODE_LOCAL" ]] && verify_layer "$NODE_LOCAL/store/$name" "$NODE_LOCAL/.repx/verified/$name" "$2"; then
        LAYER="$NODE_LOCAL/store/$name"
        return
    fi
    LAYER="$BASE/artifacts/store/$name"
    verify_layer "$LAYER" "$BASE/.repx/verified/$name" "$2" \
        || refuse_image "layer $1 in $BASE/artifacts/store is missing or its bytes differ from the Lab's: sync the Lab again"
    [[ -z "$NODE_LOCAL" ]] || copy_node_local "$1" "$2"
}

# The copy is checked under a temp name before it gets its final name: a copy cut short (a
# full disk) never does. Without a copy the job goes on with the shared layer.
copy_node_local() { # DIGEST SHA256
    local dir="$NODE_LOCAL/store" records="$NODE_LOCAL/.repx/verified" name="$1-layer.tar" tmp
    tmp="$dir/.$name.copy-$$"
    if [[ ! -L "$dir" && ! -L "$NODE_LOCAL/.repx" && ! -L "$records" ]] && mkdir -p "$dir" "$records" \
        && cp -- "$LAYER" "$tmp" 2>/dev/null && [[ "$(sha256_of "$tmp")" == "$2" ]] \
        && chmod 0444 "$tmp" && mv -fT -- "$tmp" "$dir/$name"; then
        if layer_id "$dir/$name"; then record_layer "$dir/$name" "$records/$name" "$2" "$LAYER_ID" || true; fi
        LAYER="$dir/$name"
    else
        rm -f -- "$tmp"
        printf '[repx] layer %s: no node-local copy in %s (disk full, or a link on the way?): using %s\n' \
            "$1" "$dir" "$LAYER" >>"$JOB_ROOT/repx/stderr.log"
    fi
}

# A command where nothing but ROOTFS (and a private /dev) is writable: a path that a link of the
# image leads out of the rootfs ends on the read-only host and fails. As root it also cannot
# make device nodes (a layer's dev/sda would be a real device on this host).
in_rootfs() {
    local caps=()
    [[ "$EUID" != 0 ]] || caps=(--cap-drop CAP_MKNOD)
    bwrap --ro-bind / / --dev /dev --bind "$ROOTFS" "$ROOTFS" --unshare-pid --die-with-parent "${caps[@]}" -- "$@"
}

# Member names must be relative and free of "..": GNU tar would quietly strip or skip them.
# The layer's whiteouts act on the lower layers first; they are never unpacked themselves.
extract_layer() { # LAYER DIGEST
    local members bad err
    members="$(tar -tf "$1")" || refuse_image "layer $2 is not a readable tar"
    bad="$(grep -m1 -E '^/|(^|/)\.\.(/|$)' <<<"$members")" || true
    [[ -z "$bad" ]] || refuse_image "layer $2 has a member outside the image's root file system: $bad"
    apply_whiteouts "$2" "$members"
    if ! err="$(in_rootfs tar -xf "$1" -C "$ROOTFS" --exclude='.wh.*' --no-same-owner --no-same-permissions 2>&1 >/dev/null)"; then
        err="$(grep -m1 -v 'Exiting with failure' <<<"$err" || true)"
        case "$err" in
            *"Read-only file system"*)
                refuse_image "layer $2 writes outside the image's root file system, through a link: $err" ;;
            *) refuse_image "extracting layer $2 failed: $err" ;;
        esac
    fi
}

# OCI whiteouts (image-spec layer.md), from this layer's members (tar -t escapes names; %b
# undoes it): D/.wh..wh..opq empties D of what lower layers put there, D/.wh.NAME removes
# D/NAME. Only through real directories of the rootfs (a lower layer's usr -> / would lead
# the removal out of it), and inside the sandbox all the same.
apply_whiteouts() { # DIGEST MEMBERS
    local line name dir base root err opaque=() hidden=() dirs=() logical=() real=() i
    root="$(realpath -e -- "$ROOTFS")"
    while IFS= read -r line; do
        printf -v name '%b' "${line%/}"
        base="${name##*/}" dir=.
        [[ "$name" != */* ]] || dir="${name%/*}"
        case "$base" in
            .wh..wh..opq) [[ ! -d "$root/$dir" ]] || opaque+=("$root/$dir") ;;
            .wh..wh.*) continue ;; # other reserved names (aufs): nothing to apply
            .wh. | .wh.. | .wh...) refuse_image "layer $1 has a whiteout naming no file: $name" ;;
            *) hidden+=("$root/$dir/${base#.wh.}") ;;
        esac
        dirs+=("$root/$dir")
    done < <(grep -E '(^|/)\.wh\.[^/]*/?$' <<<"$2" || true)
    ((${#dirs[@]})) || return 0
    mapfile -d '' logical < <(realpath -zms -- "${dirs[@]}")
    mapfile -d '' real < <(realpath -zm -- "${dirs[@]}")
    for i in "${!dirs[@]}"; do
        [[ "${logical[i]}" == "${real[i]}" ]] \
            || refuse_image "layer $1 has a whiteout below a link (${dirs[i]#"$root"/}): it could remove files outside the image's root file system"
    done
    if ((${#hidden[@]})); then
        err="$(in_rootfs rm -rf -- "${hidden[@]}" 2>&1)" \
            || refuse_image "layer $1: removing what its whiteouts name failed: ${err%%$'\n'*}"
    fi
    if ((${#opaque[@]})); then
        err="$(in_rootfs find "${opaque[@]}" -mindepth 1 -delete 2>&1)" \
            || refuse_image "layer $1: emptying its opaque directories failed: ${err%%$'\n'*}"
    fi
}

# --- artifact_store = "node-local": the Lab unpacked once per node ------------------------------
#
# The job's scripts run from <node_local_path>/repx/labs/<labId>/repx-tui-<sha>/, unpacked from
# <base>/lab-tars/<labId>.tar (see repx_tui/backend/labstore.py) by the first job on the node,
# under the Lab's lock there; later jobs find the copy complete (it gets its name only when it
# is). Only a tar with the bytes the client built is unpacked, and only inside the copy.

refuse_lab() { # MESSAGE
    printf '[repx] FAIL: node-local Lab: %s\n' "$*" >>"$JOB_ROOT/repx/stderr.log"
    exit 1
}

prepare_local_lab() {
    local tar want dir parent tmp bad
    IFS=$'\x1f' read -r tar want dir < <(jq -r '.lab_tar // empty | [.path, .sha256, .dir] | join("\u001f")' "$SPEC_FILE")
    [[ -n "${dir:-}" ]] || return 0
    [[ ! -e "$dir/.repx-complete" ]] || return 0
    parent="${dir%/*}"
    mkdir -p "$parent" || refuse_lab "cannot make $parent on $(uname -n)"
    exec 4>>"$parent/.lock"
    flock -x 4
    if [[ ! -e "$dir/.repx-complete" ]]; then
        [[ -f "$tar" && "$(sha256_of "$tar")" == "$want" ]] \
            || refuse_lab "$tar is missing or is not this Lab's tar: sync the Lab again"
        bad="$(tar -tf "$tar" | grep -m1 -E '^/|(^|/)\.\.(/|$)')" || true
        [[ -z "$bad" ]] || refuse_lab "$tar has a member outside the Lab: $bad"
        tmp="$(mktemp -d "$parent/.unpack.XXXXXX")"
        tar -xf "$tar" -C "$tmp" --no-same-owner || { rm -rf "$tmp"; refuse_lab "unpacking $tar into $parent failed"; }
        : >"$tmp/.repx-complete"
        chmod 0755 "$tmp"
        rm -rf "$dir"
        mv -T "$tmp" "$dir"
        printf '[repx] node-local: unpacked the Lab into %s on %s\n' "$dir" "$(uname -n)" >>"$JOB_ROOT/repx/stderr.log"
    fi
    flock -u 4
    exec 4>&-
}

# --- podman / docker: the image loaded once per node from the verified layers ------------------
#
# The engine's own image store is the per-node marker: the image is loaded under a name that
# says what it was loaded from (the spec's layers_sha256 and the config's sha256), so a later
# job on the same node finds it and loads nothing, and a changed image gets a new name. The
# load itself takes the same checked layers as bwrap and runs under a lock, once.

CONTAINER_IMAGE=""

refuse_runtime() { # MESSAGE
    printf '[repx] FAIL: runtime %s: %s\n' "$RUNTIME" "$*" >>"$JOB_ROOT/repx/stderr.log"
    exit 1
}

prepare_container_image() {
    local image_dir config_name config_sha want name lock stage i out
    command -v "$RUNTIME" >/dev/null 2>&1 || refuse_runtime "$RUNTIME is not installed on $(uname -n)"
    image_dir="$BASE/artifacts/$IMAGE_PATH"
    config_name="$(jq -r '.[0].Config // ""' "$image_dir/manifest.json")" || config_name=""
    [[ "$config_name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ && -f "$image_dir/$config_name" ]] \
        || refuse_image "its manifest names no config file (got '$config_name')"
    config_sha="$(sha256_of "$image_dir/$config_name")"
    want="$(jq -r '.image.layers_sha256 // ""' "$SPEC_FILE")"
    name="$(tr 'A-Z:' 'a-z-' <<<"$IMAGE_TAG")"
    CONTAINER_IMAGE="localhost/repx-${name:0:100}:$(printf '%s %s' "$want" "$config_sha" | sha256_of /dev/stdin | cut -c1-32)"
    if container_image_present; then return; fi
    mkdir -p "$CACHE_ROOT/cache/images"
    lock="$CACHE_ROOT/cache/images/.$IMAGE_TAG.$RUNTIME.lock"
    exec 8>>"$lock"
    flock -x 8
    if ! container_image_present; then
        check_layers "$image_dir/manifest.json"
        stage="$(mktemp -d "${TMPDIR:-/tmp}/repx-image.XXXXXX")"
        cp -- "$image_dir/$config_name" "$stage/$config_name"
        for i in "${!LAYER_DIGESTS[@]}"; do
            layer_file "${LAYER_DIGESTS[i]}" "${LAYER_SHAS[i]}"
            mkdir -p "$stage/${LAYER_DIGESTS[i]}"
            ln -s "$LAYER" "$stage/${LAYER_DIGESTS[i]}/layer.tar"
        done
        jq --arg ref "$CONTAINER_IMAGE" '[.[0] | .RepoTags = [$ref]]' "$image_dir/manifest.json" >"$stage/manifest.json"
        if ! out="$(tar -C "$stage" -chf - . | "$RUNTIME" load 2>&1)" || ! container_image_present; then
            rm -rf "$stage"
            refuse_runtime "loading the image into $RUNTIME failed: $(tail -n 1 <<<"$out")"
        fi
        rm -rf "$stage"
        printf '[repx] %s: loaded image %s as %s\n' "$RUNTIME" "$IMAGE_TAG" "$CONTAINER_IMAGE" >>"$JOB_ROOT/repx/stderr.log"
    fi
    flock -u 8
    exec 8>&-
}

container_image_present() {
    "$RUNTIME" image inspect --format '{{.Id}}' "$CONTAINER_IMAGE" >/dev/null 2>&1
}

# The same mounts as bwrap: base_path, node_local_path, mount_paths, or the host's system
# dirs read-only (mount_host_paths). The job runs as the submitting user, so its outputs are
# that user's whatever the image's config says; rootless podman keeps the uid the same inside.
container_args() { # SCRIPT
    local args=(--pull never --network host --log-driver none --user "$(id -u):$(id -g)" -w /tmp
        --entrypoint "$1" -v "$BASE:$BASE")
    [[ "$RUNTIME" != podman || "$EUID" == 0 ]] || args+=(--userns keep-id)
    [[ -z "$NODE_LOCAL" ]] || args+=(-v "$NODE_LOCAL:$NODE_LOCAL")
    local dir
    if [[ "$MOUNT_HOST" == true ]]; then
        for dir in /usr /bin /lib /lib64 /etc /opt; do
            [[ ! -e "$dir" ]] || args+=(-v "$dir:$dir:ro")
        done
    fi
    while IFS= read -r dir; do
        [[ -z "$dir" ]] || args+=(-v "$dir:$dir")
    done < <(jq -r '.mount_paths // [] | .[]' "$SPEC_FILE")
    printf '%s\0' "${args[@]}"
}

# Not `run --rm`: through podman's Docker-compatible API the docker CLI then reports exit 0
# for any exit. The container is named, waited for, and removed; a TERM (cancel) stops it.
run_container() { # SCRIPT OUT INPUTS PARAMS
    local name="repx-$$-${RANDOM}" args=() pid rc=0
    mapfile -d '' args < <(container_args "$1")
    shift
    trap '"$RUNTIME" stop --time 5 "$name" >/dev/null 2>&1 || true' TERM INT
    "$RUNTIME" run --name "$name" "${args[@]}" "$CONTAINER_IMAGE" "$@" &
    pid=$!
    while true; do
        rc=0
        wait "$pid" || rc=$?
        kill -0 "$pid" 2>/dev/null || break # a trap interrupted the wait: wait on
    done
    "$RUNTIME" rm -f "$name" >/dev/null 2>&1 || true
    return "$rc"
}

bwrap_args() {
    local args=(--ro-bind "$ROOTFS" / --dev /dev --proc /proc --tmpfs /tmp
        --bind "$BASE" "$BASE" --die-with-parent --unshare-pid)
    [[ -z "$NODE_LOCAL" ]] || args+=(--bind "$NODE_LOCAL" "$NODE_LOCAL")
    local dir
    if [[ "$MOUNT_HOST" == true ]]; then
        for dir in /usr /bin /lib /lib64 /etc /opt; do
            [[ ! -e "$dir" ]] || args+=(--ro-bind "$dir" "$dir")
        done
    fi
    while IFS= read -r dir; do
        [[ -z "$dir" ]] || args+=(--bind "$dir" "$dir")
    done < <(jq -r '.mount_paths // [] | .[]' "$SPEC_FILE")
    printf '%s\0' "${args[@]}"
}

exec_unit() { # SCRIPT OUT INPUTS PARAMS  (runs in the foreground of a subshell)
    case "$RUNTIME" in
        native) exec "$@" ;;
        bwrap)
            local args=()
            mapfile -d '' args < <(bwrap_args)
            exec bwrap "${args[@]}" -- "$@"
            ;;
        docker | podman) run_container "$@" ;;
        *)
            echo "unknown runtime $RUNTIME" >&2
            exit 127
            ;;
    esac
}

# --- one unit: a script with its out/ and repx/ dirs ------------------------------------------

on_signal() {
    [[ -z "$CHILD_PID" ]] || kill -TERM "$CHILD_PID" 2>/dev/null || true
    : >"$JOB_ROOT/repx/cancelled"
    atomic_write "$JOB_ROOT/repx/exit_code" 143
    rm -f "$JOB_ROOT/repx/SUCCESS"
    mark "$JOB_ROOT/repx" FAIL
    complete fail
    exit 143
}

# The executor itself failed (bad spec, missing tool, unreadable input): the job must still
# end with FAIL and a completion line, never without a marker.
on_exit() {
    local rc=$?
    rm -f "$SPEC_FILE"
    if ((rc != 0)) && [[ ! -e "$JOB_ROOT/repx/SUCCESS" && ! -e "$JOB_ROOT/repx/FAIL" ]]; then
        mkdir -p "$JOB_ROOT/repx"
        printf '[repx] executor failed (exit %s) before the job finished\n' "$rc" >>"$JOB_ROOT/repx/stderr.log"
        atomic_write "$JOB_ROOT/repx/exit_code" "$rc"
        mark "$JOB_ROOT/repx" FAIL
        complete fail
    fi
}

# Run one unit (main, scatter, a step or gather): fresh markers, inputs.json, parameters.json,
# an empty out/, and the script's output appended live to repx/{stdout,stderr}.log.
run_unit() { # KIND NAME CTX_JSON OUT_DIR REPX_DIR  -> the script's exit code
    local out="$4" repx="$5" script inputs rc=0
    { read -r script && read -r inputs; } < <(resolve_unit "$1" "$2" "$3") || return 1
    mkdir -p "$repx" "$out"
    rm -f "$repx/SUCCESS" "$repx/FAIL" "$repx/exit_code"
    printf '%s\n' "$inputs" >"$repx/inputs.json"
    [[ "$repx/parameters.json" == "$PARAMS_FILE" ]] || cp "$PARAMS_FILE" "$repx/parameters.json"
    find "$out" -mindepth 1 -delete
    (exec_unit "$script" "$out" "$repx/inputs.json" "$repx/parameters.json") \
        </dev/null >>"$repx/stdout.log" 2>>"$repx/stderr.log" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    atomic_write "$repx/exit_code" "$rc"
    if [[ "$rc" == 0 ]]; then mark "$repx" SUCCESS; else mark "$repx" FAIL; fi
    return "$rc"
}

complete() { # ok|fail
    {
        flock -x 9
        printf '{"id":"%s","s":"%s"}\n' "$JOB" "$1" >&9
    } 9>>"$COMPLETIONS"
}

# --- scatter-gather -------------------------------------------------------------------------

run_branch() { # INDEX
    local branch="$JOB_ROOT/branch-$1" step ctx
    mkdir -p "$branch/repx"
    jq ".[$1]" "$WORK_ITEMS" >"$branch/repx/work_item.json"
    ctx="$(printf '{"branch":"%s","work_item":"%s"}' "$branch" "$branch/repx/work_item.json")"
    for step in "${STEP_ORDER[@]}"; do
        if ! run_unit step "$step" "$ctx" "$branch/step-$step/out" "$branch/step-$step/repx"; then
            note "branch $1 step $step failed"
            return 1
        fi
    done
}

run_branches() { # COUNT  -> non-zero when any branch failed
    local running=0 failed=0 i
    for ((i = 0; i < $1; i++)); do
        if ((running >= PARALLEL)); then
            wait -n || failed=1
            running=$((running - 1))
        fi
        run_branch "$i" &
        running=$((running + 1))
    done
    while ((running > 0)); do
        wait -n || failed=1
        running=$((running - 1))
    done
    return "$failed"
}

# Also reads the count of work items and the step order, in the same jq call.
write_manifest() { # -> sets COUNT and STEP_ORDER
    local manifest="$JOB_ROOT/repx/worker_outs_manifest.json" order
    COUNT="$(jq length "$WORK_ITEMS")" || COUNT=""
    if [[ ! "$COUNT" =~ ^[0-9]+$ ]]; then
        note "scatter wrote no readable work items at $WORK_ITEMS"
        return 1
    fi
    jq --argjson n "$COUNT" --arg root "$JOB_ROOT" '
      .sink as $sink
      | [range(0; $n) as $i | .sink_outputs | with_entries(.value |= sub("^\\$out"; "\($root)/branch-\($i)/step-\($sink)/out"))]
    ' "$SPEC_FILE" >"$manifest.tmp.$$"
    mv -f "$manifest.tmp.$$" "$manifest"
    order="$(jq -r '.step_order[]' "$SPEC_FILE")"
    mapfile -t STEP_ORDER <<<"$order"
}

run_scatter_gather() {
    local ctx
    rm -rf "$JOB_ROOT/scatter" "$JOB_ROOT/gather" "$JOB_ROOT"/branch-*
    ctx="$(printf '{"job_root":"%s"}' "$JOB_ROOT")"
    if ! run_unit scatter "" "$ctx" "$JOB_ROOT/scatter/out" "$JOB_ROOT/scatter/repx"; then
        note "scatter failed"
        return 1
    fi
    WORK_ITEMS="$(jq -r --arg d "$JOB_ROOT/scatter/out" '.scatter.work_items | sub("^\\$out"; $d)' "$SPEC_FILE")"
    write_manifest || return 1
    note "scatter ok: $COUNT work items"
    if ! run_branches "$COUNT"; then
        note "a branch failed; gather not run"
        return 1
    fi
    ctx="$(printf '{"job_root":"%s","manifest":"%s"}' "$JOB_ROOT" "$JOB_ROOT/repx/worker_outs_manifest.json")"
    run_unit gather "" "$ctx" "$JOB_ROOT/out" "$JOB_ROOT/gather/repx" || return 1
    note "gather ok"
}

# --- main -----------------------------------------------------------------------------------

main() {
    local rc=0
    mkdir -p "$JOB_ROOT/repx" "$JOB_ROOT/out"
    # One executor per job at a time, whoever started it (another Lab's agent sharing the job, a
    # duplicate submission): a second one waits for the first instead of writing into the same
    # dirs, and takes its success as its own.
    # (fd 5: fd 6 is the agent's run.lock, which this process must keep holding)
    exec 5>>"$JOB_ROOT/repx/.executor.lock"
    if ! flock -n 5; then
        echo "[repx] another executor of $JOB is running; waiting for it" >&2
        flock 5
        if [[ -e "$JOB_ROOT/repx/SUCCESS" ]]; then return 0; fi
    fi
    rm -f "$JOB_ROOT/repx/SUCCESS" "$JOB_ROOT/repx/FAIL" "$JOB_ROOT/repx/exit_code" "$JOB_ROOT/repx/cancelled"
    cp "$SPEC_FILE" "$JOB_ROOT/repx/job-spec.json"
    jq .params "$SPEC_FILE" >"$PARAMS_FILE"
    trap on_exit EXIT
    trap on_signal TERM INT
    if grep -q '"lab_tar":' "$SPEC_FILE"; then prepare_local_lab; fi
    case "$RUNTIME" in
        bwrap) prepare_rootfs ;;
        docker | podman) prepare_container_image ;;
    esac
    if [[ "$STAGE_TYPE" == scatter-gather ]]; then
        find "$JOB_ROOT/out" -mindepth 1 -delete
        run_scatter_gather || rc=$?
        atomic_write "$JOB_ROOT/repx/exit_code" "$rc"
        if [[ "$rc" == 0 ]]; then mark "$JOB_ROOT/repx" SUCCESS; else mark "$JOB_ROOT/repx" FAIL; fi
    else
        run_unit main "" '{}' "$JOB_ROOT/out" "$JOB_ROOT/repx" || rc=$?
    fi
    trap - TERM INT
    if [[ "$rc" == 0 ]]; then complete ok; else complete fail; fi
    return "$rc"
}

main
