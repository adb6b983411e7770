"""The platform's Kafka ACLs, built from each service's declaration (``tpp_<service>.messaging``).

    python -m tpp_ops.acl [--prefix P] [--revoke] [--list]

runs as ``TPP_KAFKA_USERNAME`` (a super user); the principals' names come from
``TPP_<ROLE>_KAFKA_USERNAME`` (default: the role's name). ``layout()`` is the one list of
bindings the stack, the test runs, the benchmarks and a Kubernetes deployment grant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping

from tpp_plumbing.messaging import acl
from tpp_plumbing.messaging.acl import Binding, existing, grant, revoke
from tpp_plumbing.settings import KafkaSettings

from tpp_ops.platform import DECLARATIONS

#: The principals the platform runs as (besides the admin), by role; ``subscriber`` is the
#: read-only role of outside services.
ROLES = (*(d.principal for d in DECLARATIONS), acl.OPS, acl.SUBSCRIBER)


def principal_names(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each role's user name: ``TPP_<ROLE>_KAFKA_USERNAME``, or the role's name."""
    source = os.environ if env is None else env
    return {role: source.get(f"TPP_{role.upper()}_KAFKA_USERNAME") or role for role in ROLES}


def layout(prefix: str = "", names: Mapping[str, str] | None = None) -> list[Binding]:
    """Every binding the platform needs under a topic prefix (``""`` for the stack's own).

    ``names`` maps roles to user names (default: ``principal_names()``); a role left out gets
    no binding.
    """
    return acl.layout(DECLARATIONS, prefix, names or principal_names())


async def _main(args: argparse.Namespace) -> None:
    kafka = KafkaSettings()
    wanted = layout(args.prefix)
    if args.list:
        for binding in await existing(kafka):
            print(binding)
        return
    if args.revoke:
        removed = await revoke(kafka, wanted)
        print(f"removed {removed} ACL(s) under prefix {args.prefix!r}")
        return
    have = set(await existing(kafka))
    await grant(kafka, wanted)
    new = [b for b in wanted if b not in have]
    principals = len({b.principal for b in wanted})
    print(f"{len(wanted)} ACLs for {principals} principals ({len(new)} new)")


def main() -> None:
    """Grant (default), revoke or list the platform's ACLs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="", help="topic prefix the bindings cover")
    parser.add_argument("--revoke", action="store_true", help="delete the bindings instead")
    parser.add_argument("--list", action="store_true", help="print the cluster's ACLs")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
