"""What an upstream maintainer asks for first: one archive of the upgrade, with every secret masked."""
