"""Trainees: registration (one per person: passport number + country) and erasure."""

from __future__ import annotations

import uuid

from tpp_contracts.enrollment import TraineeErasedV1
from tpp_contracts.envelope import new_id
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import NotFoundError

from tpp_enrollment.api.models import Trainee, TraineeIn
from tpp_enrollment.events import trainee_registered
from tpp_enrollment.personal import PersonalData
from tpp_enrollment.store import trainees as store


class TraineeService:
    """Registers and erases trainees; their personal data never leaves this service."""

    def __init__(self, units: UnitsOfWork, personal: PersonalData) -> None:
        self._uow = units
        self._personal = personal

    async def register_trainee(
        self, data: TraineeIn, organizer_id: uuid.UUID | None = None
    ) -> tuple[Trainee, bool]:
        """Register a trainee; the same passport and country returns the existing one.

        An organizer (``organizer_id``) registering a new trainee may see its personal data;
        matching an existing one by the full record makes that trainee the organizer's to
        nominate, but shows it only what an operator shared (else the record without its
        personal fields).
        """
        trainee_id = new_id()
        sealed = self._personal.seal_trainee(
            trainee_id, data.passport_number, data.country, data.email, data.birth_date
        )
        row = {
            "id": trainee_id,
            "full_name": data.full_name,
            "country": data.country,
            "gender": data.gender.value,
            "profession": data.profession.value,
            "organization": data.organization,
        }
        async with self._uow() as uow:
            if not await store.add(uow.db, row | sealed):
                found = await store.by_passport_hash(uow.db, sealed["passport_hash"])
                trainee = Trainee.model_validate(self._personal.open_trainee(dict(found)))
                if organizer_id is not None and not await store.link(
                    uow.db, trainee.id, organizer_id, personal=False
                ):
                    trainee = trainee.without_personal_data()
                return trainee, False
            uow.emit(trainee_registered(row))
            if organizer_id is not None:
                await store.link(uow.db, trainee_id, organizer_id, personal=True)
        plain = data.model_dump() | {"passport_number": data.passport_number.upper()}
        return Trainee.model_validate(plain | {"id": trainee_id}), True

    async def share(self, trainee_id: uuid.UUID, organizer_id: uuid.UUID) -> None:
        """Let an organizer nominate the trainee by id and see its personal data (operators)."""
        async with self._uow() as uow:
            if not await store.exists(uow.db, trainee_id):
                raise NotFoundError(f"no trainee {trainee_id}")
            await store.share(uow.db, trainee_id, organizer_id)

    async def unshare(self, trainee_id: uuid.UUID, organizer_id: uuid.UUID) -> None:
        """Withdraw what :meth:`share` (or the organizer's own registration) gave; a trainee
        enrolled in the organizer's sessions stays its to see, without personal data."""
        async with self._uow() as uow:
            if not await store.exists(uow.db, trainee_id):
                raise NotFoundError(f"no trainee {trainee_id}")
            await store.unshare(uow.db, trainee_id, organizer_id)

    async def erase(self, trainee_id: uuid.UUID) -> Trainee:
        """Erase a trainee's personal data; the enrollments and the figures stay.

        Keeps the id, country, gender and profession (what the events carry); empties the
        name, organization, passport (sealed and hashed), email, birth date, the comments of
        their evaluations and the notes of their follow-ups, and the file name and hash of
        every import job whose file held them (the counts stay); records when. The trainee is
        never matched again: registering the same passport later creates a new trainee.
        Erasing again changes nothing and publishes nothing.
        """
        async with self._uow() as uow:
            row = await store.lock(uow.db, trainee_id)
            if row is None:
                raise NotFoundError(f"no trainee {trainee_id}")
            if row["erased_at"] is not None:
                return Trainee.model_validate(dict(row))
            erased = await store.erase(uow.db, trainee_id)
            uow.emit(TraineeErasedV1(trainee_id=trainee_id))
        return Trainee.model_validate(dict(erased))
