"""Memory a run will need, checked before the work starts: a description that would not fit is refused with the
bytes it needs, naming its largest part."""
import os

from bridge.errors import DescriptionError


def system_available_bytes():
    """The system's MemAvailable (free memory a new allocation can use)."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def refuse_beyond(parts, available, where):
    """Refuse work whose estimate {part of the description: bytes} exceeds `available` bytes on `where`."""
    needed = sum(parts.values())
    if needed > available:
        part, most = max(parts.items(), key=lambda item: item[1])
        raise DescriptionError(part, f"the run needs about {needed:,} bytes ({most:,} for this part), more than "
                                     f"the {available:,} bytes available on {where}; lower the batch size, the "
                                     "duration, the network or what is recorded")
