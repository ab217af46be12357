/* The media plugin's shared declarations. */

#ifndef MEDIA_H
#define MEDIA_H

#include <switchboard/plugin.h>

extern const struct sb_host_api	*media_api;

#endif /* MEDIA_H */
