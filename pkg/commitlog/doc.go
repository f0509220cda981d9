// Package commitlog is placeholder
package commitlog
