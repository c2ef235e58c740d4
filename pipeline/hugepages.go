package pipeline

// HugeHeapSize is how much heap a process that runs a job's tasks asks
// huge pages for (AdviseHugeHeap). Address space costs nothing until it is
// touched, so it is sized for the largest heap a job with one worker per
// core has on a small host: the Spark split mode's, about 120 MiB at 2M
// rows, with room to spare. Memory a job touches in it is resident 2 MiB
// at a time.
const HugeHeapSize = 256 << 20
