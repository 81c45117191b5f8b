"""``ferry completion bash|zsh``: a completion script generated from the parser itself.

Generated, not written, so a new flag or command completes the day it is added; zsh runs the bash
script through ``bashcompinit`` (native zsh descriptions would need a dependency such as ``shtab``).
"""

from __future__ import annotations

import argparse

FILE_FLAGS = ("--resource-modifiers", "--token-file", "--kubeconfig", "--dir")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(every option string, choices per option, positional choices)."""
    options: list[str] = []
    choices: dict[str, list[str]] = {}
    positional: list[str] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            options += action.option_strings
            if action.choices:
                for option in action.option_strings:
                    choices[option] = [str(c) for c in action.choices]
        elif action.choices:
            positional += [str(c) for c in action.choices]
    return options, choices, positional


def bash(parser: argparse.ArgumentParser) -> str:
    commands = _subparsers(parser)
    cases = []
    for name, sub in commands.items():
        options, choices, positional = _flags(sub)
        value_cases = "".join(
            f'            {opt}) COMPREPLY=($(compgen -W "{" ".join(vals)}" -- "$cur")); return;;\n'
            for opt, vals in choices.items()
        )
        cases.append(
            f"        {name})\n"
            f'            case "$prev" in\n{value_cases}'
            f'            {"|".join(FILE_FLAGS)}) COMPREPLY=($(compgen -f -- "$cur")); return;;\n'
            f"            esac\n"
            f'            COMPREPLY=($(compgen -W "{" ".join(options + positional)}" -- "$cur"));;\n'
        )
    return (
        "# ferry bash completion: source <(ferry completion bash)\n"
        "_ferry() {\n"
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"\n'
        '    local cmd="${COMP_WORDS[1]}"\n'
        '    if [ "$COMP_CWORD" -eq 1 ]; then\n'
        f'        COMPREPLY=($(compgen -W "{" ".join(commands)} -h --help" -- "$cur")); return\n'
        "    fi\n"
        '    case "$cmd" in\n' + "".join(cases) + "    esac\n"
        "}\n"
        "complete -F _ferry ferry\n"
    )


def zsh(parser: argparse.ArgumentParser) -> str:
    return (
        "# ferry zsh completion: source <(ferry completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash(parser).split("\n", 1)[1]
    )


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    return bash(parser) if shell == "bash" else zsh(parser)
