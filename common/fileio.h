/* Small durable-I/O helpers every component needs: write a whole buffer
 * (EINTR and short writes), and fsync a directory so a rename or create in
 * it survives a crash (the last step of every atomic update). */
#ifndef SP_FILEIO_H
#define SP_FILEIO_H

#include <stddef.h>

/* 0, or -1 with errno set. */
int sp_write_all(int fd, const void *data, size_t len);
/* 0, or -1 with errno set. */
int sp_fsync_dir(const char *dir);

#endif
