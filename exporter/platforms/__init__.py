"""Platform profiles by name. Adding a platform is one module and one line here."""

from exporter.config import DatabaseConfig
from exporter.platforms.base import Profile
from exporter.platforms.custom import CustomProfile
from exporter.platforms.nextcloud import NextcloudProfile
from exporter.platforms.owncloud import OwnCloudProfile
from exporter.platforms.synapse import SynapseProfile

PROFILES: dict[str, type[Profile]] = {p.name: p for p in (OwnCloudProfile, NextcloudProfile,
                                                          SynapseProfile, CustomProfile)}


def profile_for(database: DatabaseConfig) -> Profile:
    return PROFILES[database.platform](database)


__all__ = ["PROFILES", "Profile", "profile_for"]
