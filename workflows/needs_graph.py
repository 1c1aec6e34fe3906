"""The steps' needs as a graph: the chain behind a loop, and an order that fits a new need.

A workflow file lists its steps in a dependency order (a step may only need
steps above it). A need drawn on the graph may point at a step further down
the list; these functions say whether it would make a loop and, when it
would not, which order of the steps takes it in while moving as little as
possible. Plain data in, plain data out: workflows.editor applies them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence


def chain(needs: Mapping[str, Sequence[str]], start: str, goal: str) -> list[str] | None:
    """The shortest chain of needs from *start* to *goal* (both included), or None.

    ``chain(needs, "deploy", "build")`` is ``["deploy", "test", "build"]``
    when deploy needs test and test needs build.
    """
    came_from: dict[str, str | None] = {start: None}
    waiting = deque([start])
    while waiting:
        key = waiting.popleft()
        if key == goal:
            path = [key]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for need in needs.get(key, ()):
            if need not in came_from:
                came_from[need] = key
                waiting.append(need)
    return None


def order_for_new_need(
    order: Sequence[str], needs: Mapping[str, Sequence[str]], key: str, need: str
) -> list[str]:
    """*order* changed as little as possible so that *key* comes below *need*.

    *need* and the steps it needs, directly or not, that sit below *key* move
    up together, in their own order, to just above *key*; nothing else moves.
    Every need that held still holds: a moved step only needs steps that are
    above *key* or that moved with it, and a step that needs a moved one sat
    below it, so below *key*. The caller has made sure *need* does not need
    *key* (that would be a loop).
    """
    place = {step: index for index, step in enumerate(order)}
    if place[need] < place[key]:
        return list(order)
    moving = {need}
    waiting = [need]
    while waiting:
        for upstream in needs.get(waiting.pop(), ()):
            if upstream not in moving and place[upstream] > place[key]:
                moving.add(upstream)
                waiting.append(upstream)
    moved = [step for step in order if step in moving]
    rest = [step for step in order if step not in moving]
    at = rest.index(key)
    return rest[:at] + moved + rest[at:]
