"""``jobs completion``: the shell start-up script that makes a bare ``jobs`` usable.

``jobs`` is a builtin of bash, zsh and fish (and dash), and a builtin wins over
PATH. The script defines a shell function ``jobs`` that sends our subcommands and
options to this tool (through ``env``, which finds it on PATH) and everything else
(``jobs``, ``jobs -l``, ``jobs %1``) to the builtin, and installs completion of
subcommands, options and job ids and names for ``jobs`` and the ``jobsctl`` alias.
"""

from __future__ import annotations

import os
import shlex
import sys

import asyncclick as click

__all__ = ["ALIAS", "completion", "script"]

ALIAS = "jobsctl"
"""The console script with a name no shell has as a builtin: for scripts and /bin/sh."""

_BASH = """\
# jobs: our subcommands go to the jobs tool, the rest to the shell's own `jobs`.
jobs() {
    case "${1-}" in
        %(words)s) command %(tool)s "$@" ;;
        *) builtin jobs "$@" ;;
    esac
}

_jobs_completion() {
    local IFS=$'\\n'
    local response completion type value
    COMPREPLY=()
    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \\
        _JOBS_COMPLETE=bash_complete %(tool)s 2>/dev/null)
    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"
        if [[ $type == dir ]]; then
            COMPREPLY=(); compopt -o dirnames
        elif [[ $type == file ]]; then
            COMPREPLY=(); compopt -o default
        elif [[ $type == plain ]]; then
            COMPREPLY+=("$value")
        fi
    done
    return 0
}

complete -o nosort -F _jobs_completion jobs %(alias)s
"""

_ZSH = """\
# jobs: our subcommands go to the jobs tool, the rest to the shell's own `jobs`.
jobs() {
    case "${1-}" in
        (%(words)s) command %(tool)s "$@" ;;
        (*) builtin jobs "$@" ;;
    esac
}

_jobs_completion() {
    local -a completions completions_with_descriptions response
    local type key descr
    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \\
        _JOBS_COMPLETE=zsh_complete %(tool)s 2>/dev/null)}")
    for type key descr in ${response}; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$descr" == "_" ]]; then
                completions+=("$key")
            else
                completions_with_descriptions+=("$key":"$descr")
            fi
        elif [[ "$type" == "dir" ]]; then
            _path_files -/
        elif [[ "$type" == "file" ]]; then
            _path_files -f
        fi
    done
    if [ -n "$completions_with_descriptions" ]; then
        _describe -V unsorted completions_with_descriptions -U
    fi
    if [ -n "$completions" ]; then
        compadd -U -V unsorted -a completions
    fi
}

# compdef exists once the completion system is loaded; a bare zsh has not loaded it.
if (( ! $+functions[compdef] )); then
    autoload -Uz compinit && compinit -u
fi
compdef _jobs_completion jobs %(alias)s
"""

_FISH = """\
# jobs: our subcommands go to the jobs tool, the rest to the shell's own `jobs`.
function jobs --wraps jobs --description 'the jobs tool, or the builtin'
    switch "$argv[1]"
        case %(fish_words)s
            command %(tool)s $argv
        case '*'
            builtin jobs $argv
    end
end

function __jobs_completion
    set -l response (env _JOBS_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) \\
        COMP_CWORD=(commandline -t) %(tool)s 2>/dev/null)
    for completion in $response
        set -l metadata (string split -m 1 "," -- $completion)
        if test "$metadata[1]" = dir
            __fish_complete_directories $metadata[2]
        else if test "$metadata[1]" = file
            __fish_complete_path $metadata[2]
        else if test "$metadata[1]" = plain
            echo $metadata[2]
        end
    end
end

complete --erase --command jobs
complete --no-files --command jobs --arguments '(__jobs_completion)'
complete --no-files --command %(alias)s --arguments '(__jobs_completion)'
"""

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}
_OPTIONS = ("-h", "--help", "--version")


def script(shell: str, subcommands: list[str], tool: str = "jobs") -> str:
    """The start-up script for ``shell``, routing ``subcommands`` to ``tool`` (the
    path of the `jobs` script, or a name PATH finds)."""
    words = [*subcommands, *_OPTIONS]
    return _SCRIPTS[shell] % {
        "words": "|".join(words),
        "fish_words": " ".join(words),
        "alias": ALIAS,
        "tool": _quote(shell, tool) if tool != "jobs" else "env jobs",
    }


def _quote(shell: str, word: str) -> str:
    """``word`` as one word of ``shell``: fish's single quotes take ``\\`` and ``\'``
    as escapes, POSIX shells' take nothing."""
    if shell == "fish":
        return "'" + word.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(word)


def _this_tool() -> str:
    """The path of the `jobs` (or alias) script running now, so that the set-up works
    from a venv that is not on PATH (`eval "$(.venv/bin/jobs completion bash)"`);
    ``jobs`` when run otherwise (from Python)."""
    path = os.path.abspath(sys.argv[0])
    if os.path.basename(path) in ("jobs", ALIAS) and os.access(path, os.X_OK):
        return path
    return "jobs"


@click.command()
@click.argument("shell", type=click.Choice(sorted(_SCRIPTS)), required=False)
@click.pass_context
async def completion(ctx: click.Context, shell: str | None) -> None:
    """Print the start-up script for SHELL, which makes a bare `jobs` reach this tool.

    `jobs` is also a shell builtin, and a builtin wins over PATH. The script
    defines a `jobs` function that sends our subcommands to the tool and the rest
    (`jobs`, `jobs -l`, `jobs %1`) to the builtin, with completion of subcommands,
    options and job ids and names. Add to the shell's start-up file:

    \b
      bash:  eval "$(env jobs completion bash)"
      zsh:   eval "$(env jobs completion zsh)"
      fish:  env jobs completion fish | source

    Scripts and /bin/sh can call the `jobsctl` alias instead, which no shell shadows.
    """
    if shell is None:  # click's own message lists the choices over four lines
        raise click.UsageError(f"name the shell: jobs completion {'|'.join(sorted(_SCRIPTS))}")
    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    click.echo(script(shell, root.list_commands(ctx), _this_tool()), nl=False)
